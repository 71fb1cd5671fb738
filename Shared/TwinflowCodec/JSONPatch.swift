/// An RFC 6902 JSON Patch: a list of operations applied in order, all or nothing.
public struct JSONPatch: Sendable, Hashable {
    public enum Operation: Sendable, Hashable {
        case add(path: JSONPointer, value: JSONValue)
        case remove(path: JSONPointer)
        case replace(path: JSONPointer, value: JSONValue)
        case move(from: JSONPointer, path: JSONPointer)
        case copy(from: JSONPointer, path: JSONPointer)
        case test(path: JSONPointer, value: JSONValue)

        public var name: String {
            switch self {
            case .add: "add"
            case .remove: "remove"
            case .replace: "replace"
            case .move: "move"
            case .copy: "copy"
            case .test: "test"
            }
        }

        /// The location this operation writes or checks.
        public var path: JSONPointer {
            switch self {
            case .add(let path, _), .remove(let path), .replace(let path, _), .move(_, let path), .copy(_, let path),
                .test(let path, _):
                path
            }
        }
    }

    public var operations: [Operation]

    public init(_ operations: [Operation]) {
        self.operations = operations
    }
}

// MARK: - Decoding and encoding

extension JSONPatch {
    /// Reads a patch from its JSON form, an array of operation objects.
    public init(json: JSONValue, field: String = "patch") throws(CodecError) {
        guard case .array(let elements) = json else {
            throw .wrongType(field, expected: "an array of operations", found: json)
        }
        var operations: [Operation] = []
        operations.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            operations.append(try Operation(json: element, field: "\(field)[\(index)]"))
        }
        self.operations = operations
    }

    /// The JSON form, an array of operation objects.
    public var json: JSONValue { .array(operations.map(\.json)) }

    /// ``json`` serialized (members in key order), written without building it first.
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(64 * operations.count + 2)
        write(into: &output)
        return output
    }

    /// Appends ``serialized()``'s bytes to `output`.
    public func write(into output: inout [UInt8]) {
        output.append(UInt8(ascii: "["))
        for (position, operation) in operations.enumerated() {
            if position > 0 { output.append(UInt8(ascii: ",")) }
            operation.write(into: &output)
        }
        output.append(UInt8(ascii: "]"))
    }
}

extension JSONPatch.Operation {
    init(json: JSONValue, field: String) throws(CodecError) {
        guard case .object(let object) = json else {
            throw .wrongType(field, expected: "an operation object", found: json)
        }
        func pointer(_ member: String) throws(CodecError) -> JSONPointer {
            guard let value = object[member] else { throw .missing("\(field).\(member)") }
            guard case .string(let text) = value else { throw .wrongType("\(field).\(member)", expected: "a string", found: value) }
            do {
                return try JSONPointer(text)
            } catch {
                throw CodecError(field: "\(field).\(member)", reason: error.reason)
            }
        }
        func value() throws(CodecError) -> JSONValue {
            guard let value = object["value"] else { throw .missing("\(field).value") }
            return value
        }
        guard let opValue = object["op"] else { throw .missing("\(field).op") }
        guard case .string(let op) = opValue else { throw .wrongType("\(field).op", expected: "a string", found: opValue) }
        switch op {
        case "add": self = .add(path: try pointer("path"), value: try value())
        case "remove": self = .remove(path: try pointer("path"))
        case "replace": self = .replace(path: try pointer("path"), value: try value())
        case "move": self = .move(from: try pointer("from"), path: try pointer("path"))
        case "copy": self = .copy(from: try pointer("from"), path: try pointer("path"))
        case "test": self = .test(path: try pointer("path"), value: try value())
        default:
            throw CodecError(field: "\(field).op", reason: "unknown operation '\(op)'")
        }
    }

    /// ``json`` serialized: `from`, `op`, `path`, `value`, in that (key) order.
    func write(into output: inout [UInt8]) {
        func member(_ name: String, _ text: String, first: Bool = false) {
            if !first { output.append(UInt8(ascii: ",")) }
            JSONWriter.writeString(name, into: &output)
            output.append(UInt8(ascii: ":"))
            JSONWriter.writeString(text, into: &output)
        }
        func value(_ value: JSONValue) {
            output += #","value":"#.utf8
            JSONWriter.write(value, into: &output)
        }
        output.append(UInt8(ascii: "{"))
        switch self {
        case .add(let path, let new), .replace(let path, let new), .test(let path, let new):
            member("op", name, first: true)
            member("path", path.description)
            value(new)
        case .remove(let path):
            member("op", name, first: true)
            member("path", path.description)
        case .move(let from, let path), .copy(let from, let path):
            member("from", from.description, first: true)
            member("op", name)
            member("path", path.description)
        }
        output.append(UInt8(ascii: "}"))
    }

    public var json: JSONValue {
        switch self {
        case .add(let path, let value): ["op": "add", "path": .string(path.description), "value": value]
        case .remove(let path): ["op": "remove", "path": .string(path.description)]
        case .replace(let path, let value): ["op": "replace", "path": .string(path.description), "value": value]
        case .move(let from, let path): ["op": "move", "from": .string(from.description), "path": .string(path.description)]
        case .copy(let from, let path): ["op": "copy", "from": .string(from.description), "path": .string(path.description)]
        case .test(let path, let value): ["op": "test", "path": .string(path.description), "value": value]
        }
    }
}

// MARK: - Applying

extension JSONPatch {
    /// Applies every operation in order and returns the result; on any failure the document is
    /// left as it was and the error names the operation (`patch[2]`) and why.
    public func apply(to document: JSONValue) throws(CodecError) -> JSONValue {
        var result = document
        var budget = Budget()
        for (index, operation) in operations.enumerated() {
            do {
                try operation.apply(to: &result, within: &budget)
            } catch {
                throw CodecError(field: "patch[\(index)]", reason: error.reason)
            }
        }
        return result
    }
}

extension JSONPatch {
    /// What a patch may make of a document. `copy` shares storage, so a few operations could
    /// otherwise make a document of billions of values (each copy of a member into itself doubles
    /// it), or one nested deeper than the JSON reader reads; writing, comparing or freeing it would
    /// then run out of memory or stack. Values added are counted; values removed are not given back.
    public struct Budget: Sendable {
        public static let maximumValues = 100_000
        public static let maximumDepth = JSONReader.maximumDepth
        /// The document's values, counted at the first copy or move (a patch of adds and replaces
        /// alone is as large as the request that carries it, and the walk is not paid for it).
        private var documentValues: Int?
        private var added = 0

        /// A budget for the operations of one patch.
        public init() {}

        /// Counts `value`, about to be put at `pointer` of `document` (by `copy` or `move`, or an
        /// `add` or `replace`), against the budget.
        mutating func admit(_ value: JSONValue, at pointer: JSONPointer, copiedFrom document: JSONValue? = nil) throws(CodecError) {
            if documentValues == nil, let document { documentValues = Self.measure(document, limit: Self.maximumValues).values }
            let used = (documentValues ?? 0) + added
            let (count, depth) = Self.measure(value, limit: Self.maximumValues - used)
            guard used + count <= Self.maximumValues else {
                throw CodecError(field: "path", reason: "the document would hold more than \(Self.maximumValues) values")
            }
            guard pointer.tokens.count + depth <= Self.maximumDepth else {
                throw CodecError(field: "path", reason: "the document would be nested deeper than \(Self.maximumDepth) levels")
            }
            added += count
        }

        /// The values in `value` and its depth in arrays and objects, as the JSON reader counts it,
        /// walked without recursion; the walk stops once more than `limit` values were counted.
        static func measure(_ value: JSONValue, limit: Int) -> (values: Int, depth: Int) {
            var count = 0
            var deepest = 0
            var pending: [(value: JSONValue, enclosing: Int)] = [(value, 0)]
            while let (next, enclosing) = pending.popLast() {
                count += 1
                if count > limit { break }
                switch next {
                case .array(let items):
                    deepest = max(deepest, enclosing + 1)
                    for item in items { pending.append((item, enclosing + 1)) }
                case .object(let members):
                    deepest = max(deepest, enclosing + 1)
                    for member in members.values { pending.append((member, enclosing + 1)) }
                default: break
                }
            }
            return (count, deepest)
        }
    }
}

extension JSONPatch.Operation {
    /// Applies this one operation in place; on failure the document may be partly changed.
    public func apply(to document: inout JSONValue) throws(CodecError) {
        var budget = JSONPatch.Budget()
        try apply(to: &document, within: &budget)
    }

    /// Applies this one operation in place, counting what it adds against `budget`, which the
    /// operations of one patch share; on failure the document may be partly changed.
    public func apply(to document: inout JSONValue, within budget: inout JSONPatch.Budget) throws(CodecError) {
        switch self {
        case .add(let path, let value):
            try budget.admit(value, at: path)
            try document.insert(value, at: path)
        case .remove(let path):
            _ = try document.remove(at: path)
        case .replace(let path, let value):
            try budget.admit(value, at: path)
            try document.modify(at: path, field: "path") { $0 = value }
        case .move(let from, let path):
            guard from != path else {
                guard document.value(at: from) != nil else { throw CodecError(field: "from", reason: "'\(from)' does not exist") }
                return
            }
            guard !path.isDescendant(of: from) else {
                throw CodecError(field: "path", reason: "cannot move '\(from)' into its own child '\(path)'")
            }
            if path.tokens.count > from.tokens.count, let value = document.value(at: from) {
                try budget.admit(value, at: path, copiedFrom: document)
            }
            let value = try document.remove(at: from, field: "from")
            try document.insert(value, at: path)
        case .copy(let from, let path):
            guard let value = document.value(at: from) else {
                throw CodecError(field: "from", reason: "'\(from)' does not exist")
            }
            try budget.admit(value, at: path, copiedFrom: document)
            try document.insert(value, at: path)
        case .test(let path, let value):
            guard let actual = document.value(at: path) else {
                throw CodecError(field: "path", reason: "'\(path)' does not exist")
            }
            guard actual == value else {
                throw CodecError(
                    field: "value", reason: "test failed: '\(path)' is \(Self.quoted(actual)), not \(Self.quoted(value))")
            }
        }
    }
}

extension JSONPatch.Operation {
    /// A value as an error message quotes it: its JSON, cut short after 200 characters.
    static func quoted(_ value: JSONValue) -> String {
        let text = value.jsonString()
        return text.count <= 200 ? text : text.prefix(200) + "…"
    }
}

extension JSONValue {
    /// RFC 6902 `add`: sets an object member, or inserts into an array (`-` appends).
    mutating func insert(_ value: JSONValue, at pointer: JSONPointer) throws(CodecError) {
        guard let last = pointer.tokens.last else {
            self = value
            return
        }
        try modify(at: pointer.parent, field: "path") { (parent: inout JSONValue) throws(CodecError) in
            switch parent {
            case .object(var object):
                parent = .null
                object[last] = value
                parent = .object(object)
            case .array(var array):
                let index: Int
                if last == "-" {
                    index = array.count
                } else {
                    guard let parsed = JSONValue.arrayIndex(last, count: array.count) else {
                        throw CodecError(field: "path", reason: "'\(last)' is not an array index in '\(pointer)'")
                    }
                    guard parsed <= array.count else {
                        throw CodecError(field: "path", reason: "index \(parsed) is out of bounds in '\(pointer)'")
                    }
                    index = parsed
                }
                parent = .null
                array.insert(value, at: index)
                parent = .array(array)
            default:
                throw CodecError(field: "path", reason: "'\(pointer.parent)' is a \(parent.typeName), not an object or array")
            }
        }
    }

    /// RFC 6902 `remove`: removes and returns the value at `pointer`.
    mutating func remove(at pointer: JSONPointer, field: String = "path") throws(CodecError) -> JSONValue {
        guard let last = pointer.tokens.last else {
            throw CodecError(field: field, reason: "cannot remove the whole document")
        }
        var removed: JSONValue = .null
        try modify(at: pointer.parent, field: field) { (parent: inout JSONValue) throws(CodecError) in
            switch parent {
            case .object(var object):
                parent = .null
                guard let value = object.removeValue(forKey: last) else {
                    parent = .object(object)
                    throw CodecError(field: field, reason: "'\(pointer)' does not exist")
                }
                removed = value
                parent = .object(object)
            case .array(var array):
                guard let index = JSONValue.arrayIndex(last, count: array.count), index < array.count else {
                    throw CodecError(field: field, reason: "'\(pointer)' does not exist")
                }
                parent = .null
                removed = array.remove(at: index)
                parent = .array(array)
            default:
                throw CodecError(field: field, reason: "'\(pointer)' does not exist")
            }
        }
        return removed
    }

    /// Calls `body` with the value at `pointer`, in place.
    fileprivate mutating func modify(
        at pointer: JSONPointer,
        field: String,
        _ body: (inout JSONValue) throws(CodecError) -> Void
    ) throws(CodecError) {
        try modify(tokens: pointer.tokens[...], pointer: pointer, field: field, body)
    }

    private mutating func modify(
        tokens: ArraySlice<String>,
        pointer: JSONPointer,
        field: String,
        _ body: (inout JSONValue) throws(CodecError) -> Void
    ) throws(CodecError) {
        guard let token = tokens.first else {
            try body(&self)
            return
        }
        switch self {
        case .object(var object):
            guard var child = object[token] else {
                throw CodecError(field: field, reason: "'\(pointer)' does not exist")
            }
            self = .null
            object[token] = nil
            defer {
                object[token] = child
                self = .object(object)
            }
            try child.modify(tokens: tokens.dropFirst(), pointer: pointer, field: field, body)
        case .array(var array):
            guard let index = JSONValue.arrayIndex(token, count: array.count), index < array.count else {
                throw CodecError(field: field, reason: "'\(pointer)' does not exist")
            }
            self = .null
            var child = array[index]
            array[index] = .null
            defer {
                array[index] = child
                self = .array(array)
            }
            try child.modify(tokens: tokens.dropFirst(), pointer: pointer, field: field, body)
        default:
            throw CodecError(field: field, reason: "'\(pointer)' does not exist")
        }
    }
}
