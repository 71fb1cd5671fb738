import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Turns Nagle's algorithm off on the mock cluster's connections, as Apache Kafka does on its own.
///
/// librdkafka's mock brokers leave it on for the connections they accept, so a response written in
/// more than one piece waits for the client's delayed acknowledgement (40 ms on Linux): a produce
/// request spanning several partitions took 44 ms on devbroker where it takes 1–2 ms on a broker
/// with `TCP_NODELAY`. The mock gives no hook for its sockets, so this sweeps the process's open
/// descriptors every 20 ms and sets `TCP_NODELAY` on each TCP socket it has not seen;
/// setting it on a socket that is not TCP fails and is passed over.
final class NoDelaySweeper: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let interval: Duration

    init(interval: Duration = .milliseconds(20)) {
        self.interval = interval
    }

    func start() {
        let thread = Thread { [self] in sweepUntilStopped() }
        thread.name = "devbroker-nodelay"
        thread.start()
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
    }

    private func sweepUntilStopped() {
        var seen = Set<String>()
        let microseconds = UInt32(interval.components.attoseconds / 1_000_000_000_000 + interval.components.seconds * 1_000_000)
        while !stopped.load(ordering: .acquiring) {
            var current = Set<String>()
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
                guard let fd = Int32(name), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                    target.hasPrefix("socket:")
                else { continue }
                let key = "\(fd) \(target)"
                current.insert(key)
                guard !seen.contains(key) else { continue }
                var on: Int32 = 1
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
            }
            seen = current
            usleep(microseconds)
        }
    }
}
