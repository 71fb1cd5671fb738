import Synchronization

/// Random identifiers made fast: a xoshiro256** generator seeded once from the system's generator,
/// so an event id or a trace id costs no system call. Not for secrets.
public enum RandomID {
    private static let generator = Mutex(Xoshiro256StarStar())

    /// 128 random bits.
    static func next128() -> (UInt64, UInt64) {
        generator.withLock { ($0.next(), $0.next()) }
    }

    /// A random 64-bit number, never 0.
    public static func int64() -> Int64 {
        let value = Int64(bitPattern: generator.withLock { $0.next() })
        return value == 0 ? 1 : value
    }

    /// A version-4 UUID in lower case: `9b1c6c1e-0f3a-4c52-9a7e-5f8d2b9e1a10`.
    public static func uuid() -> String {
        var (high, low) = next128()
        high = (high & ~0xF000) | 0x4000
        low = (low & ~(0xC000 << 48)) | (0x8000 << 48)
        return String(unsafeUninitializedCapacity: 36) { text in
            var position = 0
            func write(_ word: UInt64, digits: Int, shift: Int) {
                for index in 0..<digits {
                    let nibble = Int((word >> UInt64(shift - 4 * index - 4)) & 0xF)
                    text[position] = nibble < 10 ? UInt8(ascii: "0") + UInt8(nibble) : UInt8(ascii: "a") + UInt8(nibble - 10)
                    position += 1
                }
            }
            func dash() {
                text[position] = UInt8(ascii: "-")
                position += 1
            }
            write(high, digits: 8, shift: 64)
            dash()
            write(high, digits: 4, shift: 32)
            dash()
            write(high, digits: 4, shift: 16)
            dash()
            write(low, digits: 4, shift: 64)
            dash()
            write(low, digits: 12, shift: 48)
            return position
        }
    }

    /// `value` as 16 lower-case hex digits.
    static func hexDigits(_ value: UInt64) -> [UInt8] {
        let alphabet = Array("0123456789abcdef".utf8)
        return (0..<16).reversed().map { alphabet[Int((value >> (UInt64($0) * 4)) & 0xF)] }
    }
}

struct Xoshiro256StarStar: RandomNumberGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var system = SystemRandomNumberGenerator()
        state = (system.next(), system.next(), system.next(), system.next())
        if state == (0, 0, 0, 0) { state.0 = 1 }
    }

    mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotate(state.3, 45)
        return result
    }

    private func rotate(_ value: UInt64, _ count: UInt64) -> UInt64 { (value << count) | (value >> (64 - count)) }
}
