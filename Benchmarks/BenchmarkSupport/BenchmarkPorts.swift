import Synchronization

/// HTTP ports for the services a benchmark starts: one after another from a random start in
/// 20000–28999, so two services of one run never draw the same port, below the kernel's ephemeral
/// range (32768 on), where a connection's local port or a port-0 listener (the mock broker's, the
/// clients') could be holding it, and below the test PostgreSQL clusters' 30000–39999.
public enum BenchmarkPorts {
    private static let next = Mutex(Int.random(in: 20000..<29000))

    /// A port no service of this run has been given.
    public static func take() -> Int {
        next.withLock { port in
            defer { port = port + 1 < 30000 ? port + 1 : 20000 }
            return port
        }
    }
}
