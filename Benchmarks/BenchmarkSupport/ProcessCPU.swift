import Foundation

/// CPU time (user and system) a process has used so far, from `/proc/<pid>/stat`; nil when it
/// cannot be read (the process is gone).
public func cpuSeconds(ofProcess pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    // Fields after the command's closing parenthesis start at field 3 (state); utime and stime are 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// CPU shares of a set of processes over a stretch of time, as fractions of one core.
public struct CPUShares {
    private let processes: [(name: String, pid: Int32)]
    private let start: [Double?]
    private let started = ContinuousClock.now

    public init(_ processes: [(name: String, pid: Int32)]) {
        self.processes = processes
        start = processes.map { cpuSeconds(ofProcess: $0.pid) }
    }

    /// `name 0.81, …` for each process, the share of one core it used since this was made
    /// (`name unreadable` when its CPU time could not be read at either end).
    public func summary() -> String {
        let elapsed = (ContinuousClock.now - started).seconds
        return zip(processes, start).map { process, before in
            guard let before, let now = cpuSeconds(ofProcess: process.pid) else { return "\(process.name) unreadable" }
            return "\(process.name) \(String(format: "%.2f", (now - before) / elapsed))"
        }.joined(separator: ", ")
    }
}
