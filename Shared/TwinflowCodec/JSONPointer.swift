/// An RFC 6901 JSON Pointer such as `/Temperature` or `/a~1b/0`.
public struct JSONPointer: Sendable, Hashable, CustomStringConvertible {
    /// The unescaped reference tokens; empty for the whole document.
    public var tokens: [String]

    public init(tokens: [String]) {
        self.tokens = tokens
    }

    /// Parses pointer text: empty, or `/`-separated tokens with `~0` for `~` and `~1` for `/`.
    public init(_ text: String) throws(CodecError) {
        guard !text.isEmpty else {
            self.tokens = []
            return
        }
        guard text.hasPrefix("/") else {
            throw CodecError(field: "path", reason: "JSON Pointer '\(text)' must start with '/'")
        }
        // Tokens split at each '/' code point (RFC 6901 works on code points, not on characters).
        let raws = text.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { Substring($0) }
        guard text.utf8.contains(UInt8(ascii: "~")) else {
            self.tokens = raws.map(String.init)
            return
        }
        var tokens: [String] = []
        for raw in raws {
            var token = ""
            var iterator = raw.makeIterator()
            while let character = iterator.next() {
                guard character == "~" else {
                    token.append(character)
                    continue
                }
                switch iterator.next() {
                case "0": token.append("~")
                case "1": token.append("/")
                default: throw CodecError(field: "path", reason: "JSON Pointer '\(text)' has '~' not followed by 0 or 1")
                }
            }
            tokens.append(token)
        }
        self.tokens = tokens
    }

    public var description: String {
        var text = ""
        for token in tokens {
            text += "/"
            text += token.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) ? token.replacingTilde() : token
        }
        return text
    }

    public var isRoot: Bool { tokens.isEmpty }

    /// The pointer to the containing value.
    public var parent: JSONPointer { JSONPointer(tokens: Array(tokens.dropLast())) }

    /// Whether `self` is `other` or lies inside it.
    public func isDescendant(of other: JSONPointer) -> Bool {
        tokens.count > other.tokens.count && Array(tokens.prefix(other.tokens.count)) == other.tokens
    }
}

extension String {
    fileprivate func replacingTilde() -> String {
        var result = ""
        for character in self {
            switch character {
            case "~": result += "~0"
            case "/": result += "~1"
            default: result.append(character)
            }
        }
        return result
    }
}

extension JSONValue {
    /// The value `pointer` refers to, or `nil` if there is none.
    public func value(at pointer: JSONPointer) -> JSONValue? {
        var current = self
        for token in pointer.tokens {
            switch current {
            case .object(let object):
                guard let next = object[token] else { return nil }
                current = next
            case .array(let array):
                guard let index = Self.arrayIndex(token, count: array.count), index < array.count else { return nil }
                current = array[index]
            default:
                return nil
            }
        }
        return current
    }

    /// An array index token: digits without leading zeros.
    static func arrayIndex(_ token: String, count: Int) -> Int? {
        guard !token.isEmpty, token.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        guard token == "0" || !token.hasPrefix("0") else { return nil }
        return Int(token)
    }
}
