import Foundation

/// A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` and `pg_ctl` from the system's
/// packages, in a folder of the temporary directory, listening on 127.0.0.1 on a port of its own.
/// PostgreSQL refuses to run as root, so under root (as CI runs) the cluster runs as the
/// `postgres` user the package creates. One cluster serves a test process: the first test that asks
/// starts it, and it is stopped and removed when the process exits (or, if the process died, by
/// the next test process to start one).
public final class PostgresCluster: Sendable {
    public let port: Int
    public let directory: URL
    private let binaries: URL
    /// The server's process (under root, `runuser`'s, whose child the server is).
    private let server: pid_t

    /// The user every database belongs to; trusted, without a password.
    public static let user = "twinflow"

    /// The cluster of this process, started on first use.
    public static func shared() throws -> PostgresCluster { try sharedCluster.get() }

    private static let sharedCluster = Result { () throws -> PostgresCluster in
        let cluster = try PostgresCluster(fsync: false)
        stopAtExit = cluster
        atexit { PostgresCluster.stopAtExit?.stop() }
        return cluster
    }

    nonisolated(unsafe) private static var stopAtExit: PostgresCluster?

    /// Starts a new cluster. `fsync: false` (tests) gives up durability through a crash of the
    /// machine for speed; benchmarks keep PostgreSQL's defaults.
    public init(fsync: Bool = true) throws {
        Self.removeClustersOfEndedProcesses()
        binaries = try Self.findBinaries()
        directory = Self.root.appending(path: "twinflow-postgres-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if geteuid() == 0 {
            try FileManager.default.setAttributes([.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"], ofItemAtPath: directory.path)
        }
        let data = directory.appending(path: "data").path
        try Self.run(
            binaries.appending(path: "initdb").path, ["-D", data, "-U", Self.user, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-locale"])
        var arguments = ["-D", data, "-c", "listen_addresses=127.0.0.1", "-k", directory.path, "-c", "max_connections=200"]
        if !fsync { arguments += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"] }
        var started: (port: Int, server: pid_t)?
        var lastError = ""
        for _ in 0..<5 where started == nil {
            let port = Int.random(in: 30_000..<40_000)
            let log = directory.appending(path: "server.log").path
            let server = try Self.spawn([binaries.appending(path: "postgres").path] + arguments + ["-p", "\(port)"], output: log)
            let deadline = ContinuousClock.now + .seconds(60)
            var status: Int32 = 0
            while waitpid(server, &status, WNOHANG) == 0, ContinuousClock.now < deadline {
                // The server writes `ready` into its pid file once it accepts connections.
                let lines = ((try? String(contentsOf: directory.appending(path: "data/postmaster.pid"), encoding: .utf8)) ?? "").split(
                    separator: "\n")
                if lines.count >= 8, lines[3] == "\(port)", lines[7].hasPrefix("ready") {
                    started = (port, server)
                    break
                }
                usleep(20_000)
            }
            if started == nil {
                kill(server, SIGKILL)
                lastError = (try? String(contentsOf: URL(filePath: log), encoding: .utf8)) ?? ""
            }
        }
        guard let started else { throw PostgresClusterError("PostgreSQL did not start:\n\(lastError.suffix(2_000))") }
        port = started.port
        server = started.server
    }

    /// A new empty database (`<prefix>_<random>`); its URL.
    public func makeDatabase(_ prefix: String) throws -> String {
        let name = "\(prefix.lowercased().filter { $0.isLetter || $0.isNumber })_\(UInt32.random(in: 0...UInt32.max))"
        try Self.run(binaries.appending(path: "createdb").path, ["-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user, name])
        return url(database: name)
    }

    public func url(database: String) -> String { "postgres://\(Self.user)@127.0.0.1:\(port)/\(database)?sslmode=disable" }

    /// Starts `psql` running `sql` against the database at `url`; it runs beside the caller until
    /// the statement ends.
    public func startSQL(_ sql: String, at url: String) throws -> Process {
        let process = Process()
        process.executableURL = binaries.appending(path: "psql")
        process.arguments = [url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Runs `sql` against the database at `url` with `psql` and returns what it printed, unaligned
    /// and without headers (one line per row).
    public func query(_ sql: String, at url: String) throws -> String {
        let output = FileManager.default.temporaryDirectory.appending(path: "twinflow-pg-query-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        try Self.run(binaries.appending(path: "psql").path, [url, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql, "-o", output.path])
        return (try String(contentsOf: output, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server at once (its data is thrown away) and removes the folder.
    public func stop() {
        if let pid = Self.postmaster(in: directory) { kill(pid, SIGQUIT) } else { kill(server, SIGQUIT) }
        for _ in 0..<100 where FileManager.default.fileExists(atPath: directory.appending(path: "data/postmaster.pid").path) {
            usleep(20_000)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    private static func postmaster(in directory: URL) -> pid_t? {
        guard let text = try? String(contentsOf: directory.appending(path: "data/postmaster.pid"), encoding: .utf8),
            let line = text.split(separator: "\n").first
        else { return nil }
        return pid_t(line)
    }

    /// Where clusters live: the temporary directory, or under root `/tmp`, which the `postgres` user
    /// can reach whatever `TMPDIR` says.
    private static var root: URL { geteuid() == 0 ? URL(filePath: "/tmp") : FileManager.default.temporaryDirectory }

    /// Stops and removes the clusters of test processes that ended without stopping theirs.
    private static func removeClustersOfEndedProcesses() {
        let temporary = root
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where name.hasPrefix("twinflow-postgres-") {
            guard let owner = Int32(name.dropFirst("twinflow-postgres-".count).prefix { $0.isNumber }), kill(owner, 0) != 0, errno == ESRCH
            else { continue }
            let folder = temporary.appending(path: name)
            if let pid = postmaster(in: folder) { kill(pid, SIGQUIT) }
            try? FileManager.default.removeItem(at: folder)
        }
    }

    /// `initdb`, `pg_ctl` and `createdb`: on the PATH, or in Debian's `/usr/lib/postgresql/<version>/bin`.
    private static func findBinaries() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for folder in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(folder)/initdb") {
            // Debian links some programs into the PATH; their folder has them all.
            return URL(filePath: "\(folder)/initdb").resolvingSymlinksInPath().deletingLastPathComponent()
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let folder = URL(filePath: "/usr/lib/postgresql/\(version)/bin")
            if FileManager.default.isExecutableFile(atPath: folder.appending(path: "initdb").path) { return folder }
        }
        throw PostgresClusterError("no initdb on the PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL (scripts/install-deps.sh)")
    }

    /// Starts a PostgreSQL program (as `postgres` under root) with its output appended to the file
    /// `output`. Spawned directly, not through Foundation's `Process`, which learns that a child
    /// ended from a descriptor the child inherits: the server keeps it open, and a wait would hang.
    private static func spawn(_ command: [String], output: String) throws -> pid_t {
        let argv = (geteuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []) + command
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let arguments = argv.map { strdup($0) } + [nil]
        defer { for argument in arguments { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, argv[0], &actions, nil, arguments, environ)
        guard result == 0 else { throw PostgresClusterError("could not start \(argv[0]): error \(result)") }
        return pid
    }

    /// Runs a PostgreSQL program to completion; its output in the error when it fails.
    private static func run(_ program: String, _ arguments: [String]) throws {
        let output = FileManager.default.temporaryDirectory.appending(path: "twinflow-pg-output-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let pid = try spawn([program] + arguments, output: output.path)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exited = status & 0x7f == 0
        guard exited && (status >> 8) & 0xff == 0 else {
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            throw PostgresClusterError("\((program as NSString).lastPathComponent) failed (wait status \(status)): \(text.suffix(2_000))")
        }
    }
}

public struct PostgresClusterError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
