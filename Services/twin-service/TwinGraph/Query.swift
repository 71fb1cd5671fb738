import TwinflowCodec

/// A parsed ADT query: `SELECT [TOP(n)] projections FROM DIGITALTWINS [alias] [JOIN t RELATED alias.rel [r]] [WHERE …]`.
public struct Query: Sendable, Hashable {
    public enum Projection: Sendable, Hashable {
        /// `*`: each twin as is (with a JOIN, each binding's twins by alias).
        case all
        /// `COUNT()`.
        case count
        /// `alias`, `alias.path…`, with an optional `AS name`.
        case reference(Reference, name: String)
    }

    /// `alias` or `alias.member.member…`; with no alias in the FROM clause, a bare member.
    public struct Reference: Sendable, Hashable {
        public var alias: String
        public var path: [String]
    }

    public struct Join: Sendable, Hashable {
        /// The alias of the joined (target) twin.
        public var alias: String
        /// The alias whose relationships are followed.
        public var source: String
        public var relationship: String
        /// An alias for the relationship itself, to filter on its properties.
        public var relationshipAlias: String?
    }

    public indirect enum Expression: Sendable, Hashable {
        case literal(JSONValue)
        case reference(Reference)
        case compare(Expression, Comparison, Expression)
        case and(Expression, Expression)
        case or(Expression, Expression)
        case not(Expression)
        case function(String, [Expression])
        case membership(Expression, [Expression], negated: Bool)
    }

    public enum Comparison: String, Sendable, Hashable {
        case equal = "="
        case notEqual = "!="
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="
    }

    public var top: Int?
    public var projections: [Projection]
    public var alias: String
    public var join: Join?
    public var filter: Expression?
}

/// Why a query was refused: ADT's `SqlQueryError`.
public struct QueryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

// MARK: - Parsing

extension Query {
    public init(parsing text: String) throws(QueryError) {
        var parser = QueryParser(tokens: try QueryLexer.tokens(text))
        self = try parser.parseQuery()
    }
}

enum QueryToken: Hashable {
    case word(String)
    case string(String)
    case number(JSONValue)
    case symbol(String)
}

enum QueryLexer {
    /// ADT's limit on a query's length, which bounds an event route's filter too.
    static let maximumLength = 8_000

    static func tokens(_ text: String, bounded: Bool = true) throws(QueryError) -> [QueryToken] {
        guard !bounded || text.count <= maximumLength else {
            throw QueryError(message: "The query is \(text.count) characters long; at most \(maximumLength) are allowed.")
        }
        var tokens: [QueryToken] = []
        let characters = Array(text)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character.isWhitespace {
                index += 1
            } else if character == "'" || character == "\"" {
                var value = ""
                index += 1
                while index < characters.count, characters[index] != character {
                    if characters[index] == "\\", index + 1 < characters.count {
                        index += 1
                    }
                    value.append(characters[index])
                    index += 1
                }
                guard index < characters.count else { throw QueryError(message: "A string literal is not closed.") }
                index += 1
                tokens.append(.string(value))
            } else if character.isNumber || (character == "-" && index + 1 < characters.count && characters[index + 1].isNumber) {
                var text = String(character)
                index += 1
                while index < characters.count,
                    characters[index].isNumber || characters[index] == "." || characters[index] == "e"
                        || characters[index] == "E"
                        || ((characters[index] == "+" || characters[index] == "-") && (text.last == "e" || text.last == "E"))
                {
                    text.append(characters[index])
                    index += 1
                }
                if let integer = Int64(text) {
                    tokens.append(.number(.integer(integer)))
                } else if let double = Double(text) {
                    tokens.append(.number(.double(double)))
                } else {
                    throw QueryError(message: "'\(text)' is not a number.")
                }
            } else if character.isLetter || character == "_" || character == "$" {
                var word = ""
                while index < characters.count,
                    characters[index].isLetter || characters[index].isNumber || characters[index] == "_"
                        || characters[index] == "$"
                {
                    word.append(characters[index])
                    index += 1
                }
                tokens.append(.word(word))
            } else {
                let two = index + 1 < characters.count ? String(characters[index...index + 1]) : ""
                if ["!=", "<=", ">=", "<>"].contains(two) {
                    tokens.append(.symbol(two == "<>" ? "!=" : two))
                    index += 2
                } else if "=<>(),.*[]".contains(character) {
                    tokens.append(.symbol(String(character)))
                    index += 1
                } else {
                    throw QueryError(message: "Unexpected character '\(character)'.")
                }
            }
        }
        return tokens
    }
}

struct QueryParser {
    typealias Reference = Query.Reference
    typealias Expression = Query.Expression
    typealias Comparison = Query.Comparison
    typealias Projection = Query.Projection
    typealias Join = Query.Join

    var tokens: [QueryToken]
    var position = 0
    /// How many `NOT`s, parentheses and function calls enclose the expression being read:
    /// parsing, resolving and evaluating recurse once a level.
    var nesting = 0
    let maximumNesting: Int
    static let maximumNesting = 32

    /// `bounded: false` reads a filter stored before the limits were kept, which must load as it did.
    init(tokens: [QueryToken], bounded: Bool = true) {
        self.tokens = tokens
        self.maximumNesting = bounded ? Self.maximumNesting : .max
    }

    mutating func enterNesting() throws(QueryError) {
        guard nesting < maximumNesting else {
            throw QueryError(message: "The query nests NOT, parentheses and function calls more than \(Self.maximumNesting) deep.")
        }
        nesting += 1
    }

    static let keywords: Set<String> = ["SELECT", "FROM", "WHERE", "JOIN", "RELATED", "AND", "OR", "NOT", "AS", "TOP", "IN", "NIN", "DIGITALTWINS"]

    var current: QueryToken? { position < tokens.count ? tokens[position] : nil }

    func isKeyword(_ keyword: String) -> Bool {
        if case .word(let word)? = current { return word.uppercased() == keyword }
        return false
    }

    mutating func accept(keyword: String) -> Bool {
        guard isKeyword(keyword) else { return false }
        position += 1
        return true
    }

    mutating func expect(keyword: String) throws(QueryError) {
        guard accept(keyword: keyword) else { throw QueryError(message: "Expected \(keyword) \(whereNow).") }
    }

    mutating func accept(symbol: String) -> Bool {
        guard current == .symbol(symbol) else { return false }
        position += 1
        return true
    }

    mutating func expect(symbol: String) throws(QueryError) {
        guard accept(symbol: symbol) else { throw QueryError(message: "Expected '\(symbol)' \(whereNow).") }
    }

    var whereNow: String {
        switch current {
        case nil: "at the end of the query"
        case .word(let word)?: "before '\(word)'"
        case .string(let text)?: "before '\(text)'"
        case .number(let value)?: "before \(value.jsonString())"
        case .symbol(let symbol)?: "before '\(symbol)'"
        }
    }

    mutating func identifier() throws(QueryError) -> String {
        guard case .word(let word)? = current, !Self.keywords.contains(word.uppercased()) else {
            throw QueryError(message: "Expected a name \(whereNow).")
        }
        position += 1
        return word
    }

    mutating func parseQuery() throws(QueryError) -> Query {
        try expect(keyword: "SELECT")
        var top: Int?
        if accept(keyword: "TOP") {
            try expect(symbol: "(")
            guard case .number(let value)? = current, let count = value.integerValue, count > 0 else {
                throw QueryError(message: "TOP needs a positive whole number.")
            }
            position += 1
            try expect(symbol: ")")
            top = Int(count)
        }
        var rawProjections: [(Reference?, String?, isCount: Bool, isAll: Bool)] = []
        repeat {
            if accept(symbol: "*") {
                rawProjections.append((nil, nil, false, true))
            } else if case .word(let word)? = current, word.uppercased() == "COUNT" {
                position += 1
                try expect(symbol: "(")
                try expect(symbol: ")")
                rawProjections.append((nil, nil, true, false))
            } else {
                let reference = try parseReferencePath()
                var name: String?
                if accept(keyword: "AS") { name = try identifier() }
                rawProjections.append((reference, name, false, false))
            }
        } while accept(symbol: ",")
        try expect(keyword: "FROM")
        try expect(keyword: "DIGITALTWINS")
        var alias = ""
        if case .word(let word)? = current, !Self.keywords.contains(word.uppercased()) {
            alias = word
            position += 1
        }
        var join: Join?
        if accept(keyword: "JOIN") {
            let joined = try identifier()
            try expect(keyword: "RELATED")
            let path = try parseReferencePath()
            guard path.path.count == 1 else { throw QueryError(message: "RELATED takes alias.relationshipName.") }
            var relationshipAlias: String?
            if case .word(let word)? = current, !Self.keywords.contains(word.uppercased()) {
                relationshipAlias = word
                position += 1
            }
            join = Join(alias: joined, source: path.alias, relationship: path.path[0], relationshipAlias: relationshipAlias)
            guard path.alias == alias else { throw QueryError(message: "RELATED must follow the FROM alias '\(alias)'.") }
        }
        var filter: Expression?
        if accept(keyword: "WHERE") { filter = try parseOr() }
        guard current == nil else { throw QueryError(message: "Unexpected text \(whereNow).") }

        var known: Set<String> = alias.isEmpty ? [] : [alias]
        if let join {
            known.insert(join.alias)
            if let relationshipAlias = join.relationshipAlias { known.insert(relationshipAlias) }
        }
        let projections = try rawProjections.map { (raw) throws(QueryError) -> Projection in
            if raw.isAll { return .all }
            if raw.isCount { return .count }
            let reference = try resolve(raw.0!, known: known, alias: alias)
            return .reference(reference, name: raw.1 ?? reference.path.last ?? reference.alias)
        }
        var names: Set<String> = []
        for case .reference(_, let name) in projections where !names.insert(name).inserted {
            throw QueryError(message: "Two projections are named '\(name)'; name one with AS.")
        }
        let resolved = try filter.map { (expression) throws(QueryError) in try resolve(expression, known: known, alias: alias) }
        if let resolved { try Self.checkFunctions(in: resolved, known: known, joined: join != nil) }
        return Query(top: top, projections: projections, alias: alias, join: join, filter: resolved)
    }

    /// The functions of ADT's query language, with how many arguments each takes. `STARTS_WITH` and
    /// `ENDS_WITH` are also taken, as event route filters spell them.
    static let functions: [String: ClosedRange<Int>] = [
        "IS_OF_MODEL": 1...3, "IS_DEFINED": 1...1, "IS_NULL": 1...1, "IS_BOOL": 1...1, "IS_NUMBER": 1...1, "IS_STRING": 1...1,
        "IS_OBJECT": 1...1, "IS_PRIMITIVE": 1...1, "STARTSWITH": 2...2, "ENDSWITH": 2...2, "STARTS_WITH": 2...2, "ENDS_WITH": 2...2,
        "CONTAINS": 2...2, "ARRAY_CONTAINS": 2...2,
    ]

    /// Refuses, before any twin is read, a function the language does not have, a wrong number of
    /// arguments, and `IS_OF_MODEL` without the twin's alias when a JOIN binds more than one twin.
    static func checkFunctions(in expression: Query.Expression, known: Set<String>, joined: Bool) throws(QueryError) {
        switch expression {
        case .literal, .reference: return
        case .and(let left, let right), .or(let left, let right), .compare(let left, _, let right):
            try checkFunctions(in: left, known: known, joined: joined)
            try checkFunctions(in: right, known: known, joined: joined)
        case .not(let inner): try checkFunctions(in: inner, known: known, joined: joined)
        case .membership(let item, let list, _):
            try checkFunctions(in: item, known: known, joined: joined)
            for element in list { try checkFunctions(in: element, known: known, joined: joined) }
        case .function(let name, let arguments):
            guard let arity = functions[name] else { throw QueryError(message: "\(name) is not a function of the query language.") }
            guard arity.contains(arguments.count) else {
                let expected = arity.count == 1 ? "\(arity.lowerBound)" : "\(arity.lowerBound) to \(arity.upperBound)"
                throw QueryError(message: "\(name) takes \(expected) arguments, not \(arguments.count).")
            }
            if name == "IS_OF_MODEL", joined {
                guard case .reference(let first)? = arguments.first, first.path.isEmpty, known.contains(first.alias) else {
                    throw QueryError(message: "IS_OF_MODEL needs the alias of the twin it asks about when the query JOINs twins.")
                }
            }
            for argument in arguments { try checkFunctions(in: argument, known: known, joined: joined) }
        }
    }

    /// `a.b.c` as written; whether `a` is an alias is decided once all aliases are known.
    mutating func parseReferencePath() throws(QueryError) -> Reference {
        var parts = [try identifier()]
        while accept(symbol: ".") {
            guard case .word(let word)? = current else { throw QueryError(message: "Expected a name after '.' \(whereNow).") }
            position += 1
            parts.append(word)
        }
        return Reference(alias: parts[0], path: Array(parts.dropFirst()))
    }

    func resolve(_ reference: Reference, known: Set<String>, alias: String) throws(QueryError) -> Reference {
        if known.contains(reference.alias) { return reference }
        guard alias.isEmpty else { throw QueryError(message: "'\(reference.alias)' is not an alias of this query.") }
        return Reference(alias: "", path: [reference.alias] + reference.path)
    }

    func resolve(_ expression: Expression, known: Set<String>, alias: String) throws(QueryError) -> Expression {
        switch expression {
        case .literal: return expression
        case .reference(let reference): return .reference(try resolve(reference, known: known, alias: alias))
        case .compare(let left, let comparison, let right):
            return .compare(try resolve(left, known: known, alias: alias), comparison, try resolve(right, known: known, alias: alias))
        case .and(let left, let right): return .and(try resolve(left, known: known, alias: alias), try resolve(right, known: known, alias: alias))
        case .or(let left, let right): return .or(try resolve(left, known: known, alias: alias), try resolve(right, known: known, alias: alias))
        case .not(let inner): return .not(try resolve(inner, known: known, alias: alias))
        case .function(let name, let arguments):
            var resolved: [Expression] = []
            for argument in arguments {
                // IS_OF_MODEL takes a bare alias first and the word `exact` last.
                if case .reference(let reference) = argument, reference.path.isEmpty,
                    known.contains(reference.alias) || reference.alias.lowercased() == "exact"
                {
                    resolved.append(argument)
                } else {
                    resolved.append(try resolve(argument, known: known, alias: alias))
                }
            }
            return .function(name, resolved)
        case .membership(let value, let list, let negated):
            var resolvedList: [Expression] = []
            for item in list { resolvedList.append(try resolve(item, known: known, alias: alias)) }
            return .membership(try resolve(value, known: known, alias: alias), resolvedList, negated: negated)
        }
    }

    mutating func parseOr() throws(QueryError) -> Expression {
        var left = try parseAnd()
        while accept(keyword: "OR") { left = .or(left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws(QueryError) -> Expression {
        var left = try parseNot()
        while accept(keyword: "AND") { left = .and(left, try parseNot()) }
        return left
    }

    mutating func parseNot() throws(QueryError) -> Expression {
        if accept(keyword: "NOT") {
            try enterNesting()
            defer { nesting -= 1 }
            return .not(try parseNot())
        }
        return try parseComparison()
    }

    mutating func parseComparison() throws(QueryError) -> Expression {
        let left = try parseOperand()
        if case .symbol(let symbol)? = current, let comparison = Comparison(rawValue: symbol) {
            position += 1
            return .compare(left, comparison, try parseOperand())
        }
        let negated = isKeyword("NIN")
        if accept(keyword: "IN") || accept(keyword: "NIN") {
            try expect(symbol: "[")
            var items: [Expression] = []
            if !accept(symbol: "]") {
                repeat { items.append(try parseOperand()) } while accept(symbol: ",")
                try expect(symbol: "]")
            }
            return .membership(left, items, negated: negated)
        }
        return left
    }

    mutating func parseOperand() throws(QueryError) -> Expression {
        switch current {
        case .string(let text)?:
            position += 1
            return .literal(.string(text))
        case .number(let value)?:
            position += 1
            return .literal(value)
        case .symbol("(")?:
            position += 1
            try enterNesting()
            defer { nesting -= 1 }
            let inner = try parseOr()
            try expect(symbol: ")")
            return inner
        case .word(let word)?:
            switch word.uppercased() {
            case "TRUE":
                position += 1
                return .literal(true)
            case "FALSE":
                position += 1
                return .literal(false)
            case "NULL":
                position += 1
                return .literal(.null)
            default:
                break
            }
            if position + 1 < tokens.count, tokens[position + 1] == .symbol("("), !Self.keywords.contains(word.uppercased()) {
                position += 2
                try enterNesting()
                defer { nesting -= 1 }
                var arguments: [Expression] = []
                if !accept(symbol: ")") {
                    repeat { arguments.append(try parseOr()) } while accept(symbol: ",")
                    try expect(symbol: ")")
                }
                return .function(word.uppercased(), arguments)
            }
            return .reference(try parseReferencePath())
        default:
            throw QueryError(message: "Expected a value \(whereNow).")
        }
    }
}
