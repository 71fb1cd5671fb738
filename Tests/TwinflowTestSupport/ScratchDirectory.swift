import Foundation

/// Folders for the stores and files of tests: all of a test process's folders are under one root,
/// `twinflow-tests-<pid>` in the temporary directory, and the first folder a process asks for
/// removes the roots of test processes that are gone. A folder is never removed while its process
/// runs, so a store in it may stay open as long as the test holds it.
public enum ScratchDirectory {
    /// A new folder, `<prefix>-<UUID>` (not created; a store creates it).
    public static func make(_ prefix: String) -> URL {
        root.appending(path: "\(prefix)-\(UUID())")
    }

    private static let root: URL = {
        let temporary = FileManager.default.temporaryDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        for name in names where name.hasPrefix("twinflow-tests-") {
            guard let pid = Int32(name.dropFirst("twinflow-tests-".count)), kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? FileManager.default.removeItem(at: temporary.appending(path: name))
        }
        return temporary.appending(path: "twinflow-tests-\(getpid())")
    }()
}
