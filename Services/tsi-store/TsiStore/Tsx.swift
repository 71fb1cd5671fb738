import TwinflowCodec

/// The part of Time Series Expressions (TSX) tsi-store understands: property references
/// (`$event.Temperature`, `$event.Front.Temperature.Double`, `$event['Front.Temperature']`),
/// `$value`, aggregations (`avg($value)`, `count()`, `max($event.Temperature)`), and filters of
/// comparisons (`=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`) between references and literals joined by
/// `and`, `or`, `not` and parentheses.
public enum Tsx {
    /// The aggregations rollups answer.
    public enum Function: String, Sendable, Hashable, CaseIterable {
        case avg, min, max, sum, count, first, last
    }

    /// What an aggregation reads: the variable's `$value`, an event property, or nothing (`count()`).
    public enum Argument: Sendable, Hashable {
        case value
        case property(String)
        case none
    }

    public indirect enum Filter: Sendable, Hashable {
        case comparison(Operand, Comparison, Operand)
        case and(Filter, Filter)
        case or(Filter, Filter)
        case not(Filter)

        /// Whether an event with `values` passes; a missing property reads as `null`.
        public func matches(_ values: [String: JSONValue]) -> Bool {
            switch self {
            case .and(let a, let b): a.matches(values) && b.matches(values)
            case .or(let a, let b): a.matches(values) || b.matches(values)
            case .not(let inner): !inner.matches(values)
            case .comparison(let lhs, let comparison, let rhs): comparison.holds(lhs.value(in: values), rhs.value(in: values))
            }
        }
    }

    public enum Operand: Sendable, Hashable {
        case property(String)
        case literal(JSONValue)

        func value(in values: [String: JSONValue]) -> JSONValue {
            switch self {
            case .property(let name): values[name] ?? .null
            case .literal(let value): value
            }
        }
    }

    public enum Comparison: String, Sendable, Hashable {
        case equal = "="
        case notEqual = "!="
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="

        /// Numbers compare as numbers, strings as strings; `=` and `!=` compare anything (a missing
        /// property equals `null`); an ordering between values of other kinds is false.
        func holds(_ a: JSONValue, _ b: JSONValue) -> Bool {
            switch self {
            case .equal: return a == b
            case .notEqual: return a != b
            default: break
            }
            let order: Bool?
            if let x = a.doubleValue, let y = b.doubleValue {
                order = compare(x, y)
            } else if case .string(let x) = a, case .string(let y) = b {
                order = compare(x, y)
            } else {
                order = nil
            }
            return order ?? false
        }

        private func compare<T: Comparable>(_ x: T, _ y: T) -> Bool {
            switch self {
            case .less: x < y
            case .lessOrEqual: x <= y
            case .greater: x > y
            case .greaterOrEqual: x >= y
            case .equal: x == y
            case .notEqual: x != y
            }
        }
    }

    /// The longest expression read, in characters, and the deepest nesting of `not` and
    /// parentheses in a filter: a query's cost stays bounded, and parsing and matching a filter
    /// recurse once a level.
    public static let maximumLength = 4_096
    public static let maximumNesting = 32

    /// The property a reference names (the whole of `text` must be one reference).
    public static func property(_ text: String) throws(QueryError) -> String {
        var scanner = try Scanner(text)
        guard case .property(let name) = try scanner.next(), try scanner.next() == nil else {
            throw QueryError("'\(text)' is not a property reference such as $event.Temperature")
        }
        return name
    }

    /// An aggregation: `avg($value)`, `count()`, `sum($event.Temperature)`…
    public static func aggregation(_ text: String) throws(QueryError) -> (Function, Argument) {
        var scanner = try Scanner(text)
        let usage = "'\(text)' is not an aggregation such as avg($value) or count() (avg, min, max, sum, count, first, last)"
        guard case .word(let name) = try scanner.next(), let function = Function(rawValue: name.lowercased()),
            try scanner.next() == .symbol("(")
        else { throw QueryError(usage) }
        var argument = Argument.none
        switch try scanner.next() {
        case .symbol(")"):
            guard function == .count else { throw QueryError("\(function.rawValue)() needs an argument, such as $value") }
            guard try scanner.next() == nil else { throw QueryError(usage) }
            return (function, .none)
        case .value: argument = .value
        case .property(let name): argument = .property(name)
        default: throw QueryError(usage)
        }
        guard try scanner.next() == .symbol(")"), try scanner.next() == nil else { throw QueryError(usage) }
        return (function, argument)
    }

    /// A filter expression.
    public static func filter(_ text: String) throws(QueryError) -> Filter {
        var parser = FilterParser(scanner: try Scanner(text), text: text)
        try parser.advance()
        let filter = try parser.or()
        guard parser.current == nil else { throw QueryError("the filter '\(text)' has more after a complete expression") }
        return filter
    }

    enum Token: Hashable {
        case property(String)
        case value
        case word(String)
        case number(JSONValue)
        case string(String)
        case symbol(String)
    }

    static let typeSuffixes = [".Double", ".Long", ".String", ".Bool", ".DateTime", ".TimeSpan", ".Dynamic"]

    struct Scanner {
        let characters: [Character]
        let text: String
        var index = 0

        init(_ text: String) throws(QueryError) {
            guard text.count <= Tsx.maximumLength else {
                throw QueryError("a TSX expression is at most \(Tsx.maximumLength) characters; this one has \(text.count)")
            }
            self.text = text
            self.characters = Array(text)
        }

        /// Whether the text at `index` starts with `prefix`, compared in place.
        private func hasPrefix(_ prefix: String) -> Bool {
            var position = index
            for character in prefix {
                guard position < characters.count, characters[position] == character else { return false }
                position += 1
            }
            return true
        }

        mutating func next() throws(QueryError) -> Token? {
            while index < characters.count, characters[index].isWhitespace { index += 1 }
            guard index < characters.count else { return nil }
            let character = characters[index]
            if character == "$" {
                if hasPrefix("$value") {
                    index += 6
                    return .value
                }
                guard hasPrefix("$event") else {
                    throw QueryError("unknown reference at '\(String(characters[index..<min(index + 20, characters.count)]))' in '\(text)'")
                }
                index += 6
                var name: String
                if index + 1 < characters.count, characters[index] == "[" {
                    index += 1
                    guard case .string(let quoted) = try quotedString() else { throw QueryError("expected $event['name'] in '\(text)'") }
                    guard index < characters.count, characters[index] == "]" else { throw QueryError("expected ] after the name in '\(text)'") }
                    index += 1
                    name = quoted
                    // An optional type: $event['name'].Double
                    var suffix = ""
                    if index < characters.count, characters[index] == "." {
                        var end = index + 1
                        while end < characters.count, characters[end].isLetter { end += 1 }
                        suffix = String(characters[index..<end])
                        guard Tsx.typeSuffixes.contains(suffix) else { throw QueryError("unknown type '\(suffix)' in '\(text)'") }
                        index = end
                    }
                } else {
                    guard index < characters.count, characters[index] == "." else { throw QueryError("expected $event.<name> in '\(text)'") }
                    index += 1
                    let start = index
                    while index < characters.count, characters[index].isLetter || characters[index].isNumber || "_.$".contains(characters[index]) {
                        index += 1
                    }
                    name = String(characters[start..<index])
                    while name.hasSuffix(".") { name.removeLast() }
                    if let suffix = Tsx.typeSuffixes.first(where: { name.hasSuffix($0) }), name.count > suffix.count {
                        name.removeLast(suffix.count)
                    }
                }
                guard !name.isEmpty else { throw QueryError("a property reference names no property in '\(text)'") }
                return .property(name)
            }
            if character == "'" { return try quotedString() }
            if character.isNumber || (character == "-" && index + 1 < characters.count && characters[index + 1].isNumber) {
                let start = index
                index += 1
                while index < characters.count,
                    characters[index].isNumber || ".eE".contains(characters[index])
                        || ("+-".contains(characters[index]) && "eE".contains(characters[index - 1]))
                {
                    index += 1
                }
                let literal = String(characters[start..<index])
                if let integer = Int64(literal) { return .number(.integer(integer)) }
                guard let double = Double(literal) else { throw QueryError("'\(literal)' is not a number in '\(text)'") }
                return .number(.double(double))
            }
            if character.isLetter {
                let start = index
                while index < characters.count, characters[index].isLetter || characters[index].isNumber || characters[index] == "_" { index += 1 }
                return .word(String(characters[start..<index]))
            }
            for symbol in ["!=", "<>", "<=", ">=", "==", "=", "<", ">", "(", ")", ","] where hasPrefix(symbol) {
                index += symbol.count
                return .symbol(symbol)
            }
            throw QueryError("unexpected '\(character)' in '\(text)'")
        }

        private mutating func quotedString() throws(QueryError) -> Token {
            index += 1
            var value = ""
            while index < characters.count {
                if characters[index] == "'" {
                    if index + 1 < characters.count, characters[index + 1] == "'" {
                        value.append("'")
                        index += 2
                        continue
                    }
                    index += 1
                    return .string(value)
                }
                value.append(characters[index])
                index += 1
            }
            throw QueryError("a string is not closed in '\(text)'")
        }
    }

    struct FilterParser {
        var scanner: Scanner
        let text: String
        var current: Token?
        /// How many `not`s and parentheses enclose the term being read.
        var nesting = 0

        mutating func advance() throws(QueryError) { current = try scanner.next() }

        private func isWord(_ word: String) -> Bool {
            if case .word(let found) = current { return found.lowercased() == word }
            return false
        }

        mutating func or() throws(QueryError) -> Filter {
            var left = try and()
            while isWord("or") {
                try advance()
                left = .or(left, try and())
            }
            return left
        }

        mutating func and() throws(QueryError) -> Filter {
            var left = try not()
            while isWord("and") {
                try advance()
                left = .and(left, try not())
            }
            return left
        }

        mutating func not() throws(QueryError) -> Filter {
            if isWord("not") {
                try enterNesting()
                defer { nesting -= 1 }
                try advance()
                return .not(try not())
            }
            if current == .symbol("(") {
                try enterNesting()
                defer { nesting -= 1 }
                try advance()
                let inner = try or()
                guard current == .symbol(")") else { throw QueryError("a parenthesis is not closed in the filter '\(text)'") }
                try advance()
                return inner
            }
            let lhs = try operand()
            guard case .symbol(let symbol) = current, let comparison = Self.comparisons[symbol] else {
                throw QueryError("expected a comparison (=, !=, <, <=, >, >=) in the filter '\(text)'")
            }
            try advance()
            return .comparison(lhs, comparison, try operand())
        }

        private mutating func enterNesting() throws(QueryError) {
            guard nesting < Tsx.maximumNesting else {
                throw QueryError("the filter nests not and parentheses more than \(Tsx.maximumNesting) deep")
            }
            nesting += 1
        }

        static let comparisons: [String: Comparison] = [
            "=": .equal, "==": .equal, "!=": .notEqual, "<>": .notEqual, "<": .less, "<=": .lessOrEqual, ">": .greater, ">=": .greaterOrEqual,
        ]

        mutating func operand() throws(QueryError) -> Operand {
            let operand: Operand
            switch current {
            case .property(let name): operand = .property(name)
            case .number(let value): operand = .literal(value)
            case .string(let value): operand = .literal(.string(value))
            case .word(let word) where ["true", "false", "null"].contains(word.lowercased()):
                operand = .literal(word.lowercased() == "null" ? .null : .bool(word.lowercased() == "true"))
            default:
                throw QueryError("expected a property reference or a literal in the filter '\(text)'")
            }
            try advance()
            return operand
        }
    }
}
