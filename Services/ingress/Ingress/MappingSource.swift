import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TwinflowCodec
import TwinflowRuntime

/// The mapping in force: the file `INGRESS_MAPPING` names, read again whenever its content
/// changes (checked every `interval`), or ADT's sample when no file is named.
///
/// A file that cannot be read or parsed at startup stops the service; one that breaks later is
/// logged and the mapping before it stays in force, so a half-saved edit never drops messages.
public final class MappingSource: Service, Sendable {
    private struct State {
        var mapping: IngressMapping
        var content: [UInt8]
        var version: Int
        var lastError: String?
    }

    /// The file's path, or `nil` for ADT's sample.
    public let path: String?
    private let interval: Duration
    private let logger: Logger
    private let state: Mutex<State>

    /// Reads the file now; throws when it cannot be read or is not a mapping.
    public init(path: String?, interval: Duration = .seconds(2), logger: Logger) throws(MappingError) {
        self.path = path
        self.interval = interval
        self.logger = logger
        guard let path else {
            state = Mutex(State(mapping: .sample, content: [], version: 0))
            return
        }
        let content = try Self.read(path)
        state = Mutex(State(mapping: try Self.parse(content, path: path), content: content, version: 0))
    }

    /// A fixed mapping, for tests and embedding.
    public init(mapping: IngressMapping, logger: Logger) {
        self.path = nil
        self.interval = .seconds(3600)
        self.logger = logger
        self.state = Mutex(State(mapping: mapping, content: [], version: 0))
    }

    /// The mapping in force and its version (counting reloads), read together.
    public var current: (mapping: IngressMapping, version: Int) { state.withLock { ($0.mapping, $0.version) } }

    /// What the `mapping` readiness check reports, read together: whether the file's newest content
    /// is the mapping in force (false after an edit that cannot be read or parsed; messages go on
    /// under the mapping before it), and in words which mapping is in force and why the last reload
    /// failed, if it did.
    public var status: (isCurrent: Bool, detail: String) {
        state.withLock { state in
            let source = path.map { "\($0), version \(state.version)" } ?? "ADT's sample (no INGRESS_MAPPING)"
            guard let error = state.lastError else { return (true, source) }
            return (false, "\(source) stays in force; the file's newest content is not used: \(error)")
        }
    }

    /// Reads the file again if it changed; returns whether a new mapping is in force.
    @discardableResult
    public func reload() -> Bool {
        guard let path else { return false }
        do {
            let content = try Self.read(path)
            let mended = state.withLock { state -> Bool? in
                guard content == state.content else { return nil }
                defer { state.lastError = nil }
                return state.lastError != nil
            }
            if let mended {
                if mended { logger.info("mapping file holds the mapping in force again", metadata: ["file": "\(path)"]) }
                return false
            }
            let mapping = try Self.parse(content, path: path)
            let version = state.withLock { state in
                state.mapping = mapping
                state.content = content
                state.version += 1
                state.lastError = nil
                return state.version
            }
            logger.info("mapping reloaded", metadata: ["file": "\(path)", "version": "\(version)"])
            return true
        } catch {
            let changed = state.withLock { state in
                defer { state.lastError = error.description }
                return state.lastError != error.description
            }
            if changed { logger.error("mapping file not reloaded; the mapping before stays in force", metadata: ["error": .error(error)]) }
            return false
        }
    }

    /// Checks the file until shutdown (a service that returned early would stop the service group).
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                self.reload()
            }
        }
    }

    private static func read(_ path: String) throws(MappingError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MappingError(description: "INGRESS_MAPPING=\"\(path)\": the file cannot be read")
        }
        return Array(data)
    }

    private static func parse(_ content: [UInt8], path: String) throws(MappingError) -> IngressMapping {
        do {
            return try IngressMapping(json: JSONValue.parse(content))
        } catch {
            throw MappingError(description: "INGRESS_MAPPING=\"\(path)\" is not a valid mapping: \(error)")
        }
    }
}

/// A mapping file that cannot be used.
public struct MappingError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
