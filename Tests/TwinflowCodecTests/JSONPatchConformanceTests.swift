import Foundation
import Testing
import TwinflowCodec
import TwinflowTestSupport

/// Runs the RFC 6902 conformance files of `../shared/conformance/json-patch/` as they are.
@Suite struct JSONPatchConformanceTests {
    struct Record {
        var comment: String
        var doc: JSONValue
        var patch: JSONValue
        var expected: JSONValue?
        var error: String?
    }

    static func records(_ file: String) throws -> [Record] {
        let url = Fixtures.conformance.appending(path: "json-patch/\(file)")
        let all = try JSONValue.parse(Array(try Data(contentsOf: url)))
        guard case .array(let elements) = all else { throw CodecError(field: file, reason: "not an array") }
        return elements.compactMap { element in
            guard element["disabled"] != .bool(true), let doc = element["doc"], let patch = element["patch"] else { return nil }
            return Record(
                comment: element["comment"]?.stringValue ?? element.jsonString(),
                doc: doc,
                patch: patch,
                expected: element["expected"],
                error: element["error"]?.stringValue
            )
        }
    }

    func run(_ file: String, expectedCount: Int) throws {
        let records = try Self.records(file)
        #expect(records.count == expectedCount, "records run from \(file)")
        for record in records {
            let outcome = Result { () throws(CodecError) -> JSONValue in
                try JSONPatch(json: record.patch).apply(to: record.doc)
            }
            switch (outcome, record.expected, record.error) {
            case (.success(let result), let expected?, _):
                #expect(result == expected, "\(file): \(record.comment)")
            case (.success(let result), nil, let error?):
                Issue.record("\(file): \(record.comment): expected error '\(error)', got \(result.jsonString())")
            case (.success, nil, nil):
                break  // a record without expectation only has to apply
            case (.failure(let error), _, let expectedError?):
                #expect(!error.reason.isEmpty, "\(file): \(record.comment) (\(expectedError))")
            case (.failure(let error), _, nil):
                Issue.record("\(file): \(record.comment): unexpected error \(error)")
            }
        }
    }

    @Test func testsFile() throws {
        try run("tests.json", expectedCount: 92)
    }

    @Test func specTestsFile() throws {
        try run("spec_tests.json", expectedCount: 16)
    }
}
