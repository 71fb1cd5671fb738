/// ISO 8601 durations of fixed length, as TSI's `interval` takes them: `PT1M`, `PT1H`, `P1D`,
/// `P1W`, `PT30S`, `P1DT12H`, `PT0.5S`. Years and months (`P1Y`, `P1M`) have no fixed length and are refused.
public enum ISODuration {
    /// The duration in milliseconds, or `nil` when `text` is not such a duration (or is zero).
    public static func milliseconds(_ text: String) -> Int64? {
        var characters = Array(text.uppercased())
        guard characters.first == "P", characters.count > 1 else { return nil }
        characters.removeFirst()
        var total: Double = 0
        var inTime = false
        var number = ""
        var sawUnit = false
        for character in characters {
            if character == "T" {
                guard !inTime, number.isEmpty else { return nil }
                inTime = true
                continue
            }
            if character.isNumber || character == "." || character == "," {
                number.append(character == "," ? "." : character)
                continue
            }
            guard let value = Double(number) else { return nil }
            number = ""
            let unit: Double
            switch (character, inTime) {
            case ("W", false): unit = 7 * 86_400_000
            case ("D", false): unit = 86_400_000
            case ("H", true): unit = 3_600_000
            case ("M", true): unit = 60_000
            case ("S", true): unit = 1000
            default: return nil
            }
            total += value * unit
            sawUnit = true
        }
        guard number.isEmpty, sawUnit, total >= 1, total < 1e15 else { return nil }
        return Int64(total.rounded())
    }
}
