/// W3C trace context's `traceparent` header: `00-<32 hex trace id>-<16 hex parent id>-<flags>`.
public enum Traceparent {
    /// A new sampled trace, for a change whose cause carried none.
    public static func random() -> String {
        "00-\(hex(UInt64.random(in: 1...UInt64.max)))\(hex(UInt64.random(in: 0...UInt64.max)))-\(hex(UInt64.random(in: 1...UInt64.max)))-01"
    }

    /// True when `value` has the version-00 shape.
    public static func isValid(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2 else { return false }
        return parts.allSatisfy { $0.allSatisfy(\.isHexDigit) } && parts[1] != String(repeating: "0", count: 32)
            && parts[2] != String(repeating: "0", count: 16)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
