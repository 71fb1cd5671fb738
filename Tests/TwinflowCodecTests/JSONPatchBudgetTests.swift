import Testing
import TwinflowCodec

/// What one patch may make of a document: copies share storage, so without a budget a few
/// operations made a document of billions of values, or one too deep to write or free.
@Suite struct JSONPatchBudgetTests {
    /// Each copy of `/p` into a member of itself doubles it: refused once the document would pass
    /// 100,000 values, long before a billion.
    @Test func copiesThatDoubleADocumentStopAtTheBudget() throws {
        var operations: [JSONPatch.Operation] = [.add(path: JSONPointer(tokens: ["p"]), value: ["v": 1])]
        for copy in 1...40 { operations.append(.copy(from: JSONPointer(tokens: ["p"]), path: JSONPointer(tokens: ["p", "c\(copy)"]))) }
        let error = #expect(throws: CodecError.self) { try JSONPatch(operations).apply(to: ["$dtId": "t1"]) }
        #expect(error?.reason.contains("more than \(JSONPatch.Budget.maximumValues) values") == true, "\(String(describing: error))")
        #expect(error?.field.hasPrefix("patch[16]") == true, "refused at the copy that passes the budget: \(String(describing: error))")

        let fewer = try JSONPatch(Array(operations.prefix(6))).apply(to: ["$dtId": "t1"])
        #expect(fewer.value(at: JSONPointer(tokens: ["p", "c5", "c4", "c3", "c2", "c1", "v"])) == 1)
    }

    /// Members added one inside the other: refused past the JSON reader's 512 levels, and
    /// accepted up to them.
    @Test func addsNestedPastTheReadersDepthAreRefused() throws {
        var operations: [JSONPatch.Operation] = []
        var path: [String] = []
        for _ in 0..<600 {
            path.append("n")
            operations.append(.add(path: JSONPointer(tokens: path), value: [:]))
        }
        let error = #expect(throws: CodecError.self) { try JSONPatch(operations).apply(to: [:]) }
        #expect(error?.reason.contains("deeper than \(JSONPatch.Budget.maximumDepth) levels") == true, "\(String(describing: error))")
        // 511 members inside the document: 512 levels, as deep as the reader reads, and no deeper.
        let deepest = try JSONPatch(Array(operations.prefix(511))).apply(to: [:])
        #expect(throws: Never.self) { try JSONValue.parse(deepest.serialized()) }
        #expect(throws: CodecError.self) { try JSONPatch(Array(operations.prefix(512))).apply(to: [:]) }
    }

    /// A failed `test` quotes the values it compared, cut short.
    @Test func aFailedTestQuotesAtMost200Characters() throws {
        let long = JSONValue.string(String(repeating: "x", count: 10_000))
        let error = #expect(throws: CodecError.self) {
            try JSONPatch([.test(path: JSONPointer(tokens: ["a"]), value: 1)]).apply(to: ["a": long])
        }
        #expect((error?.reason.count ?? .max) < 500, "\(String(describing: error?.reason.count))")
    }
}
