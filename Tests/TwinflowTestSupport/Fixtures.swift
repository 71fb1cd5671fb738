import Foundation
import TwinflowCodec

/// The files tests share: the DTDL models in `deploy/models/` (the seed scenario and a building in
/// ADT's sample style) and the recorded messages in `Tests/Fixtures/`.
public enum Fixtures {
    /// The package's root folder.
    public static let packageRoot = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The shared conformance suites the tests run as they are: `../shared/conformance` beside the
    /// package's root, or `$TWINFLOW_SHARED_DIR/conformance`.
    public static var conformance: URL {
        if let shared = ProcessInfo.processInfo.environment["TWINFLOW_SHARED_DIR"] {
            return URL(filePath: shared).appending(path: "conformance")
        }
        return packageRoot.deletingLastPathComponent().appending(path: "shared/conformance")
    }

    /// `deploy/models`: one folder per model set.
    public static let modelsRoot = packageRoot.appending(path: "deploy/models")

    /// The models of `deploy/models/<set>`, as one upload (a JSON array, files in name order).
    public static func upload(_ set: String) throws -> JSONValue {
        let folder = modelsRoot.appending(path: set)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
        return .array(try files.map { try JSONValue.parse(Array(try Data(contentsOf: folder.appending(path: $0)))) })
    }

    /// The bytes of `Tests/Fixtures/<path>`, such as `adt-events/twin-update.json`.
    public static func file(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: packageRoot.appending(path: "Tests/Fixtures/\(path)")))
    }
}
