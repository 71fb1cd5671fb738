/// A Digital Twin Model Identifier, such as `dtmi:contosocom:DigitalTwins:Thermostat;1`.
public struct DTMI: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// Checks DTDL's form: `dtmi:` then `:`-separated segments (a letter first, then letters, digits
    /// or `_`, not ending in `_`), then `;` and a version (v3 also allows `major.minor`).
    public init?(_ text: String) {
        guard text.hasPrefix("dtmi:"), text.utf8.count <= 2048 else { return nil }
        let body = text.dropFirst(5)
        let parts = body.split(separator: ";", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let segments = parts[0].split(separator: ":", omittingEmptySubsequences: false)
        guard !segments.isEmpty, segments.allSatisfy(Self.isValidSegment) else { return nil }
        let version = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(version.count), version.allSatisfy(Self.isValidVersionNumber) else { return nil }
        self.rawValue = text
    }

    private static func isValidSegment(_ segment: Substring) -> Bool {
        guard let first = segment.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII,
            segment.last != "_"
        else { return false }
        return segment.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }

    private static func isValidVersionNumber(_ number: Substring) -> Bool {
        !number.isEmpty && number.count <= 9 && number.first != "0" && number.allSatisfy(\.isASCIIDigit)
    }

    /// For ids already checked (stored with a model or twin): skips the syntax check.
    init(checked rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    public static func < (lhs: DTMI, rhs: DTMI) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
