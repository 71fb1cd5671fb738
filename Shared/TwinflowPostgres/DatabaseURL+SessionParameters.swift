extension DatabaseURL {
    /// The server probes an idle connection after 10 s and every 5 s, and ends the session after
    /// 3 probes unanswered, or when what it sent stays unacknowledged for 25 s (a connection that is
    /// sent notifications all the time never idles, and probes wait while data does): the session of
    /// an instance whose host vanished, with no TCP reset, ends within about 25 s, and its locks go with it.
    public static let keepaliveParameters: [(String, String)] = [
        ("tcp_keepalives_idle", "10"), ("tcp_keepalives_interval", "5"), ("tcp_keepalives_count", "3"), ("tcp_user_timeout", "25000"),
    ]

    /// The settings of every session that reads and writes rows (a pool's and a writer's):
    /// ``keepaliveParameters``; a statement that waits longer than `lockTimeout` for a lock another
    /// session holds fails (the caller answers 503 or tries its batch again) instead of waiting
    /// for ever; a session left idle inside a transaction for 30 s is ended, and its locks released.
    public static func sessionParameters(lockTimeout: Duration = .seconds(10)) -> [(String, String)] {
        let milliseconds = lockTimeout.components.seconds * 1000 + lockTimeout.components.attoseconds / 1_000_000_000_000_000
        return keepaliveParameters + [
            ("lock_timeout", "\(max(1, milliseconds))"),
            ("idle_in_transaction_session_timeout", "30000"),
        ]
    }
}
