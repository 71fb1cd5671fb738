import Foundation
import KafkaRecords
import TwinflowCodec

/// Reads a device message in its common shape (`systemProperties`, `properties` and `body`, the
/// Event Grid endpoint's `data`) without building the values ingress does not use: of
/// `systemProperties` only the device ID, the enqueued time and the message ID are kept, the rest
/// is checked and passed over. Building every system property as a JSON value cost more than
/// the rest of a message's way through ingress.
///
/// Anything else (an envelope, an escaped key, a property that is not a string, a body that does
/// not parse, a duplicate member, text that is not JSON) is not read here: ``scan(_:key:)`` returns
/// `nil` and the codec's `DeviceMessage` decoder reads the message, and names its error.
enum DeviceMessageScanner {
    /// The device message, or `nil` when the codec's decoder must read it.
    static func scan(_ bytes: [UInt8]?, key: String?) -> DeviceMessage? {
        guard let bytes, !bytes.isEmpty else { return nil }
        return bytes.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer)
            return scanner.message(key: key)
        }
    }

    /// The member names the scanner looks for, as bytes.
    private enum Names {
        static let systemProperties = Array("systemProperties".utf8)
        static let properties = Array("properties".utf8)
        static let body = Array("body".utf8)
        static let deviceID = Array(DeviceMessage.deviceIDProperty.utf8)
        static let enqueuedTime = Array(DeviceMessage.enqueuedTimeProperty.utf8)
        static let messageID = Array(DeviceMessage.messageIDProperty.utf8)
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        var depth = 0

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        mutating func message(key: String?) -> DeviceMessage? {
            var deviceID: String?
            var enqueuedTime: String?
            var messageID: String?
            var properties: [String: JSONValue]?
            var body: JSONValue?
            var seenSystem = false
            skipWhitespace()
            guard take(UInt8(ascii: "{")) else { return nil }
            // The message's own object is the first level, as the codec counts.
            depth = 1
            var first = true
            while true {
                skipWhitespace()
                if first, take(UInt8(ascii: "}")) { break }
                guard let member = plainStringRange() else { return nil }
                skipWhitespace()
                guard take(UInt8(ascii: ":")) else { return nil }
                skipWhitespace()
                if !seenSystem, equals(member, Names.systemProperties) {
                    seenSystem = true
                    guard systemProperties(&deviceID, &enqueuedTime, &messageID) else { return nil }
                } else if properties == nil, equals(member, Names.properties) {
                    guard let value = parsedValue(allowingNonFinite: false), case .object(let object) = value else { return nil }
                    properties = object
                } else if body == nil, equals(member, Names.body) {
                    guard let value = bodyValue() else { return nil }
                    body = value
                } else {
                    return nil
                }
                skipWhitespace()
                if take(UInt8(ascii: "}")) { break }
                guard take(UInt8(ascii: ",")) else { return nil }
                first = false
            }
            skipWhitespace()
            guard index == bytes.count, let body else { return nil }
            guard let device = deviceID.flatMap({ $0.isEmpty ? nil : $0 }) ?? key.flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
            return DeviceMessage(
                deviceID: device, enqueuedTime: enqueuedTime, messageID: messageID.flatMap { $0.isEmpty ? nil : $0 },
                properties: properties ?? [:], body: body)
        }

        /// Keeps the three system properties ingress uses; checks and passes over the others.
        mutating func systemProperties(_ deviceID: inout String?, _ enqueuedTime: inout String?, _ messageID: inout String?) -> Bool {
            guard take(UInt8(ascii: "{")) else { return false }
            var first = true
            while true {
                skipWhitespace()
                if first, take(UInt8(ascii: "}")) { return true }
                guard let name = plainStringRange() else { return false }
                skipWhitespace()
                guard take(UInt8(ascii: ":")) else { return false }
                skipWhitespace()
                if equals(name, Names.deviceID) {
                    guard deviceID == nil, let value = plainString() else { return false }
                    deviceID = value
                } else if equals(name, Names.enqueuedTime) {
                    guard enqueuedTime == nil, let value = plainString() else { return false }
                    enqueuedTime = value
                } else if equals(name, Names.messageID) {
                    guard messageID == nil, let value = plainString() else { return false }
                    messageID = value
                } else {
                    guard skipValue() else { return false }
                }
                skipWhitespace()
                if take(UInt8(ascii: "}")) { return true }
                guard take(UInt8(ascii: ",")) else { return false }
                first = false
            }
        }

        /// The body: JSON, or a string of base64 of JSON.
        mutating func bodyValue() -> JSONValue? {
            guard index < bytes.count else { return nil }
            guard bytes[index] == UInt8(ascii: "\"") else { return parsedValue(allowingNonFinite: true) }
            guard let text = plainString(), let data = Data(base64Encoded: text) else { return nil }
            return try? JSONValue.parse(Array(data), field: "body", allowingNonFiniteNumbers: true)
        }

        /// The next value, parsed by the codec's reader.
        mutating func parsedValue(allowingNonFinite: Bool) -> JSONValue? {
            let start = index
            guard skipValue(allowingNonFinite: allowingNonFinite) else { return nil }
            return try? JSONValue.parse(UnsafeBufferPointer(rebasing: bytes[start..<index]), allowingNonFiniteNumbers: allowingNonFinite)
        }

        /// A string without escapes (a system property ingress keeps), or `nil`.
        mutating func plainString() -> String? {
            guard let range = plainStringRange() else { return nil }
            let text = UnsafeBufferPointer(rebasing: bytes[range])
            if text.allSatisfy({ $0 < 0x80 }) { return String(decoding: text, as: UTF8.self) }
            return String(validating: text, as: UTF8.self)
        }

        /// Where the next string's text is, for a string without escapes; `nil` otherwise.
        mutating func plainStringRange() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    defer { index += 1 }
                    return start..<index
                }
                guard byte != UInt8(ascii: "\\"), byte >= 0x20 else { return nil }
                index += 1
            }
            return nil
        }

        func equals(_ range: Range<Int>, _ name: [UInt8]) -> Bool {
            range.count == name.count
                && name.withUnsafeBufferPointer { memcmp(bytes.baseAddress! + range.lowerBound, $0.baseAddress!, name.count) == 0 }
        }

        /// Passes over one JSON value, checking its syntax.
        mutating func skipValue(allowingNonFinite: Bool = false) -> Bool {
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "\""): return skipString()
            case UInt8(ascii: "{"): return skipContainer(close: UInt8(ascii: "}"), members: true, allowingNonFinite: allowingNonFinite)
            case UInt8(ascii: "["): return skipContainer(close: UInt8(ascii: "]"), members: false, allowingNonFinite: allowingNonFinite)
            case UInt8(ascii: "t"): return skipLiteral("true")
            case UInt8(ascii: "f"): return skipLiteral("false")
            case UInt8(ascii: "n"): return skipLiteral("null")
            case UInt8(ascii: "N") where allowingNonFinite: return skipLiteral("NaN")
            case UInt8(ascii: "I") where allowingNonFinite: return skipLiteral("Infinity")
            case UInt8(ascii: "-") where allowingNonFinite && index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "I"):
                return skipLiteral("-Infinity")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return skipNumber()
            default: return false
            }
        }

        mutating func skipContainer(close: UInt8, members: Bool, allowingNonFinite: Bool) -> Bool {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { return false }
            index += 1
            skipWhitespace()
            if take(close) { return true }
            while true {
                if members {
                    guard skipString() else { return false }
                    skipWhitespace()
                    guard take(UInt8(ascii: ":")) else { return false }
                    skipWhitespace()
                }
                guard skipValue(allowingNonFinite: allowingNonFinite) else { return false }
                skipWhitespace()
                if take(close) { return true }
                guard take(UInt8(ascii: ",")) else { return false }
                skipWhitespace()
            }
        }

        mutating func skipString() -> Bool {
            guard take(UInt8(ascii: "\"")) else { return false }
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""): return true
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return false }
                    let escaped = bytes[index]
                    index += 1
                    if escaped == UInt8(ascii: "u") {
                        guard index + 4 <= bytes.count, (index..<index + 4).allSatisfy({ Self.isHexDigit(bytes[$0]) }) else { return false }
                        index += 4
                    } else {
                        switch escaped {
                        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                            UInt8(ascii: "r"), UInt8(ascii: "t"):
                            break
                        default: return false
                        }
                    }
                case 0..<0x20: return false
                default: continue
                }
            }
            return false
        }

        mutating func skipNumber() -> Bool {
            _ = take(UInt8(ascii: "-"))
            let integerStart = index
            guard skipDigits() > 0 else { return false }
            guard index - integerStart == 1 || bytes[integerStart] != UInt8(ascii: "0") else { return false }
            if take(UInt8(ascii: ".")) { guard skipDigits() > 0 else { return false } }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard skipDigits() > 0 else { return false }
            }
            return true
        }

        mutating func skipDigits() -> Int {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - start
        }

        mutating func skipLiteral(_ literal: StaticString) -> Bool {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] { return false }
            index += count
            return true
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        static func isHexDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }
    }
}
