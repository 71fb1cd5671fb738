/// W3C trace context's `traceparent` header: `00-<32 hex trace id>-<16 hex parent id>-<flags>`.
public enum Traceparent {
    /// A new sampled trace, for a change whose cause carried none.
    public static func random() -> String {
        String(decoding: randomBytes(), as: UTF8.self)
    }

    /// ``random()`` as UTF-8 bytes, for a writer that builds a message's bytes directly.
    public static func randomBytes() -> [UInt8] {
        let (high, low) = RandomID.next128()
        let (parent, _) = RandomID.next128()
        var text = Array("00-".utf8)
        text += RandomID.hexDigits(high | 1) + RandomID.hexDigits(low)
        text.append(UInt8(ascii: "-"))
        text += RandomID.hexDigits(parent | 1)
        text += Array("-01".utf8)
        return text
    }

    /// A span in `parent`'s trace: the same trace ID and flags, a new parent ID; a new trace when
    /// `parent` is missing or not valid.
    public static func child(of parent: String?) -> String {
        guard let parent, isValid(parent) else { return random() }
        let (span, _) = RandomID.next128()
        let text = Array(parent.utf8)
        return String(decoding: text[0..<36] + RandomID.hexDigits(span | 1) + text[52...], as: UTF8.self)
    }

    /// True when `value` has the version-00 shape.
    public static func isValid(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            guard bytes.count == 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else {
                return false
            }
            func hex(_ range: Range<Int>) -> Bool {
                range.allSatisfy { index in
                    let byte = bytes[index]
                    return (48...57).contains(byte) || (97...102).contains(byte) || (65...70).contains(byte)
                }
            }
            func zeros(_ range: Range<Int>) -> Bool { range.allSatisfy { bytes[$0] == UInt8(ascii: "0") } }
            return hex(0..<2) && hex(3..<35) && hex(36..<52) && hex(53..<55) && !zeros(3..<35) && !zeros(36..<52)
        }
    }
}
