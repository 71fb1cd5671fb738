import Logging
import TwinflowCodec

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Log lines on standard error, in `StreamLogHandler`'s layout
/// (`time level label: key=value … [source] message`), with metadata rendered only for a line that
/// is written: the HTTP server sets a request ID on every request's logger, and rendering it there
/// cost every request more than its routing.
public struct ServiceLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String

    public init(label: String, logLevel: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = Self.line(
            time: Timestamp.now(), label: label, event: event,
            metadata: effectiveMetadata(event)
        )
        Array(line.utf8).withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let result = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if result > 0 {
                    offset += result
                } else if result < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    private func effectiveMetadata(_ event: LogEvent) -> Logger.Metadata {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, provided in provided }
        }
        if let explicit = event.metadata, !explicit.isEmpty {
            merged.merge(explicit) { _, explicit in explicit }
        }
        if let error = event.error {
            merged["error.message"] = .error(error)
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return merged
    }

    static func line(time: String, label: String, event: LogEvent, metadata: Logger.Metadata) -> String {
        let rendered = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "\(time) \(event.level) \(label):\(rendered.isEmpty ? "" : " \(rendered)") [\(event.source)] \(event.message)\n"
    }
}
