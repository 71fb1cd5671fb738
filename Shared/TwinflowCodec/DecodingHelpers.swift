extension [String: JSONValue] {
    func requiredString(_ key: String, in parent: String) throws(CodecError) -> String {
        guard let value = self[key] else { throw .missing(path(parent, key)) }
        guard case .string(let string) = value, !string.isEmpty else {
            throw .wrongType(path(parent, key), expected: "a non-empty string", found: value)
        }
        return string
    }

    func optionalString(_ key: String, in parent: String) throws(CodecError) -> String? {
        guard let value = self[key], value != .null else { return nil }
        guard case .string(let string) = value else { throw .wrongType(path(parent, key), expected: "a string", found: value) }
        return string
    }

    func requiredObject(_ key: String, in parent: String) throws(CodecError) -> [String: JSONValue] {
        guard let value = self[key] else { throw .missing(path(parent, key)) }
        guard case .object(let object) = value else { throw .wrongType(path(parent, key), expected: "an object", found: value) }
        return object
    }
}

func path(_ parent: String, _ key: String) -> String {
    parent.isEmpty || parent == "$" ? key : "\(parent).\(key)"
}

extension JSONValue {
    /// Parses `bytes` and requires an object at the top.
    static func parseObject(_ bytes: [UInt8]?, what: String) throws(CodecError) -> [String: JSONValue] {
        guard let bytes, !bytes.isEmpty else { throw CodecError(field: "$", reason: "\(what) has no value") }
        let value = try JSONValue.parse(bytes)
        guard case .object(let object) = value else { throw .wrongType("$", expected: "a JSON object", found: value) }
        return object
    }
}
