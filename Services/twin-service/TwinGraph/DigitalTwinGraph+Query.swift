import Foundation
import TwinflowCodec

/// One page of query results, as ADT's `POST /query` answers: `{"value": […], "continuationToken": …}`.
public struct QueryPage: Sendable, Hashable {
    public var value: [JSONValue]
    public var continuationToken: String?
}

/// Where a page of query results ended: the FROM twin of its last row and, for a JOIN, the
/// relationship of that row (`nil`: every row of that twin was handed out). A continuation resumes
/// right after it, so no page scans again what the pages before it covered, and rows of a twin
/// that come or go between pages do not make its other rows repeat or go missing.
struct QueryCursor: Sendable, Hashable {
    var sourceID: String
    var afterRelationship: String?
}

extension DigitalTwinGraph {
    /// How much a page may examine (FROM twins and JOIN rows) before it is answered, full or not,
    /// with a continuation token: a query that matches little of a large graph is answered in
    /// steps, not by one request that reads it all. (COUNT() reads what it counts in one request.)
    public static let queryWorkPerPage = 10_000

    /// Runs a query, or continues one from `continuationToken`. Reads see every write whose call returned.
    public func query(
        _ text: String?, continuationToken: String? = nil, pageSize: Int = 100, workPerPage: Int = queryWorkPerPage
    ) async throws -> QueryPage {
        var queryText = text
        var resumeAfter: QueryCursor?
        var returnedBefore = 0
        if let continuationToken {
            guard let data = Data(base64Encoded: continuationToken),
                let state = try? JSONValue.parse(Array(data)), let saved = state["query"]?.stringValue,
                let after = state["after"]?.stringValue, let returned = state["returned"]?.integerValue,
                state["relationship"].map({ $0.stringValue != nil }) ?? true,
                // A client can write a token too: a count that no query reaches could overflow below.
                (0...Int64(Int32.max)).contains(returned)
            else { throw ServiceError(code: "BadRequest", status: 400, "The continuation token is not valid.") }
            queryText = saved
            resumeAfter = QueryCursor(sourceID: after, afterRelationship: state["relationship"]?.stringValue)
            returnedBefore = Int(returned)
        }
        guard let queryText, !queryText.isEmpty else { throw ServiceError.invalidArgument("query is required.") }
        let query: Query
        do {
            query = try Query(parsing: queryText)
        } catch {
            throw ServiceError(code: "SqlQueryError", status: 400, error.message)
        }
        if query.projections.contains(.count) {
            var count: Int64 = 0
            _ = try await evaluate(query, workBudget: nil) { _, _ in
                count += 1
                return true
            }
            return QueryPage(value: [["COUNT": .integer(count)]], continuationToken: nil)
        }
        let wanted = min(pageSize, query.top.map { max(0, $0 - returnedBefore) } ?? pageSize)
        var page: [JSONValue] = []
        var last: QueryCursor?
        var more = false
        if wanted > 0 {
            let stoppedAt = try await evaluate(query, resumingAfter: resumeAfter, workBudget: workPerPage) { binding, cursor in
                guard page.count < wanted else {
                    more = true
                    return false
                }
                page.append(project(binding, query))
                last = cursor
                return true
            }
            if let stoppedAt {
                more = true
                last = stoppedAt
            }
        }
        var token: String?
        if more, let last, query.top.map({ returnedBefore + page.count < $0 }) ?? true {
            var state: [String: JSONValue] = [
                "query": .string(queryText), "after": .string(last.sourceID), "returned": .integer(Int64(returnedBefore + page.count)),
            ]
            if let relationship = last.afterRelationship { state["relationship"] = .string(relationship) }
            token = Data(JSONValue.object(state).serialized()).base64EncodedString()
        }
        return QueryPage(value: page, continuationToken: token)
    }

    typealias Binding = [String: JSONValue]

    /// Hands each binding that passes the filter to `visit`, in order (FROM twins by id, a twin's
    /// JOIN rows by relationship id), with the cursor just after it, until `visit` returns false.
    /// With `resumingAfter`, starts right after that cursor. Holds no more than one binding at a
    /// time. Once it has examined `workBudget` FROM twins and JOIN rows, it stops after the twin at
    /// hand and returns where (nil when it read to the end or `visit` stopped it).
    func evaluate(
        _ query: Query, resumingAfter cursor: QueryCursor? = nil, workBudget: Int?, visit: (Binding, QueryCursor) throws -> Bool
    ) async throws -> QueryCursor? {
        let models = self.models
        var examined = 0
        func passes(_ binding: Binding) throws -> Bool {
            try query.filter.map({ (filter) throws(ServiceError) in try Self.truth(filter, binding, models) }) ?? true
        }
        /// False once `visit` wants no more.
        func consider(_ source: StoredTwin, afterRelationship: String?) async throws -> Bool {
            examined += 1
            guard let join = query.join else {
                let binding: Binding = [query.alias: source.document]
                return try !passes(binding) || visit(binding, QueryCursor(sourceID: source.id, afterRelationship: nil))
            }
            // By their bytes, as the stores order them: Swift's `<` takes two forms of one text as equal.
            let relationships = try await store.relationships(sourceID: source.id, name: join.relationship).sorted {
                $0.id.utf8.lexicographicallyPrecedes($1.id.utf8)
            }
            for relationship in relationships where afterRelationship.map({ $0.utf8.lexicographicallyPrecedes(relationship.id.utf8) }) ?? true {
                examined += 1
                guard let target = try await store.twin(relationship.targetID) else { continue }
                var binding: Binding = [query.alias: source.document, join.alias: target.document]
                if let relationshipAlias = join.relationshipAlias { binding[relationshipAlias] = relationship.document }
                guard try passes(binding) else { continue }
                if try !visit(binding, QueryCursor(sourceID: source.id, afterRelationship: relationship.id)) { return false }
            }
            return true
        }
        func spent() -> Bool { workBudget.map { examined >= $0 } ?? false }
        if let ids = query.filter.flatMap({ Self.twinIDs(constrainedBy: $0, alias: query.alias) }) {
            let ordered = ids.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for id in ordered where cursor.map({ !id.utf8.lexicographicallyPrecedes($0.sourceID.utf8) }) ?? true {
                var after: String?
                if let cursor, id.utf8.elementsEqual(cursor.sourceID.utf8) {
                    // The twin's rows were all handed out, or the page ended at one of its relationships.
                    guard query.join != nil, let relationship = cursor.afterRelationship else { continue }
                    after = relationship
                }
                guard let twin = try await store.twin(id) else { continue }
                if try await !consider(twin, afterRelationship: after) { return nil }
                if spent() { return QueryCursor(sourceID: id, afterRelationship: nil) }
            }
            return nil
        }
        if let cursor, query.join != nil, let relationship = cursor.afterRelationship, let resumed = try await store.twin(cursor.sourceID) {
            if try await !consider(resumed, afterRelationship: relationship) { return nil }
            if spent() { return QueryCursor(sourceID: resumed.id, afterRelationship: nil) }
        }
        var after = cursor?.sourceID
        while true {
            let page = try await store.twins(after: after, limit: 1000)
            for twin in page {
                if try await !consider(twin, afterRelationship: nil) { return nil }
                if spent() { return QueryCursor(sourceID: twin.id, afterRelationship: nil) }
            }
            guard let last = page.last, page.count == 1000 else { return nil }
            after = last.id
        }
    }

    /// The twin ids a filter pins the FROM twin to (`alias.$dtId = '…'` or `IN […]` among its AND terms).
    static func twinIDs(constrainedBy filter: Query.Expression, alias: String) -> Set<String>? {
        let idReference = Query.Expression.reference(Query.Reference(alias: alias, path: ["$dtId"]))
        switch filter {
        case .compare(let left, .equal, .literal(.string(let id))) where left == idReference: return [id]
        case .compare(.literal(.string(let id)), .equal, let right) where right == idReference: return [id]
        case .membership(let value, let items, negated: false) where value == idReference:
            let ids = items.compactMap { item -> String? in
                if case .literal(.string(let id)) = item { return id }
                return nil
            }
            return ids.count == items.count ? Set(ids) : nil
        case .and(let left, let right):
            return twinIDs(constrainedBy: left, alias: alias) ?? twinIDs(constrainedBy: right, alias: alias)
        default:
            return nil
        }
    }

    func project(_ binding: Binding, _ query: Query) -> JSONValue {
        var row: [String: JSONValue] = [:]
        for projection in query.projections {
            switch projection {
            case .all:
                if query.join == nil { return binding[query.alias] ?? .null }
                for (alias, document) in binding { row[alias] = document }
            case .count:
                break
            case .reference(let reference, let name):
                if let value = Self.value(of: reference, in: binding) { row[name] = value }
            }
        }
        return .object(row)
    }

    static func value(of reference: Query.Reference, in binding: Binding) -> JSONValue? {
        var current = binding[reference.alias]
        for member in reference.path { current = current?[member] }
        return current
    }

    static func value(_ expression: Query.Expression, _ binding: Binding, _ models: ModelSet) throws(ServiceError) -> JSONValue? {
        switch expression {
        case .literal(let value): return value
        case .reference(let reference): return value(of: reference, in: binding)
        default: return .bool(try truth(expression, binding, models))
        }
    }

    static func truth(_ expression: Query.Expression, _ binding: Binding, _ models: ModelSet) throws(ServiceError) -> Bool {
        switch expression {
        case .literal(let value): return value == .bool(true)
        case .reference(let reference): return value(of: reference, in: binding) == .bool(true)
        case .and(let left, let right):
            guard try truth(left, binding, models) else { return false }
            return try truth(right, binding, models)
        case .or(let left, let right):
            if try truth(left, binding, models) { return true }
            return try truth(right, binding, models)
        case .not(let inner): return try !truth(inner, binding, models)
        case .compare(let left, let comparison, let right):
            guard let lhs = try value(left, binding, models), let rhs = try value(right, binding, models) else { return false }
            return compare(lhs, comparison, rhs)
        case .membership(let item, let list, let negated):
            guard let needle = try value(item, binding, models) else { return false }
            var found = false
            for candidate in list where try value(candidate, binding, models) == needle { found = true }
            return found != negated
        case .function(let name, let arguments):
            return try function(name, arguments, binding, models)
        }
    }

    static func compare(_ lhs: JSONValue, _ comparison: Query.Comparison, _ rhs: JSONValue) -> Bool {
        switch comparison {
        case .equal: return lhs == rhs
        case .notEqual: return lhs != rhs
        default: break
        }
        let order: ComparisonResult
        if let a = lhs.doubleValue, let b = rhs.doubleValue {
            order = a < b ? .orderedAscending : (a > b ? .orderedDescending : .orderedSame)
        } else if case .string(let a) = lhs, case .string(let b) = rhs {
            order = a < b ? .orderedAscending : (a > b ? .orderedDescending : .orderedSame)
        } else {
            return false
        }
        switch comparison {
        case .less: return order == .orderedAscending
        case .lessOrEqual: return order != .orderedDescending
        case .greater: return order == .orderedDescending
        case .greaterOrEqual: return order != .orderedAscending
        case .equal, .notEqual: return false
        }
    }

    static func function(_ name: String, _ arguments: [Query.Expression], _ binding: Binding, _ models: ModelSet) throws(ServiceError) -> Bool {
        func argument(_ index: Int) throws(ServiceError) -> JSONValue? {
            guard index < arguments.count else { throw ServiceError(code: "SqlQueryError", status: 400, "\(name) needs more arguments.") }
            return try value(arguments[index], binding, models)
        }
        switch name {
        case "IS_OF_MODEL":
            var rest = arguments[...]
            var twin = binding.count == 1 ? binding.values.first : nil
            if case .reference(let reference)? = rest.first, reference.path.isEmpty, let bound = binding[reference.alias] {
                twin = bound
                rest = rest.dropFirst()
            }
            guard case .literal(.string(let modelText))? = rest.first, let base = DTMI(modelText) else {
                throw ServiceError(code: "SqlQueryError", status: 400, "IS_OF_MODEL needs a model id.")
            }
            var exact = false
            if case .reference(let flag)? = rest.dropFirst().first, flag.path.isEmpty, flag.alias.lowercased() == "exact" {
                exact = true
            }
            guard let modelID = twin?["$metadata"]?["$model"]?.stringValue, let model = DTMI(modelID) else { return false }
            return exact ? model == base : models.model(model, isOfModel: base)
        case "IS_DEFINED": return try argument(0) != nil
        case "IS_NULL": return try argument(0) == .null
        case "IS_BOOL": if case .bool? = try argument(0) { return true } else { return false }
        case "IS_NUMBER": return try argument(0)?.doubleValue != nil
        case "IS_STRING": return try argument(0)?.stringValue != nil
        case "IS_OBJECT": return try argument(0)?.objectValue != nil
        case "IS_PRIMITIVE":
            guard let value = try argument(0) else { return false }
            return value.objectValue == nil && value.arrayValue == nil
        case "TOUCHES":
            // Event filters only: whether the event's patch changed the pointer or anything under it.
            guard let pointer = try argument(0)?.stringValue, let patch = binding["$body"]?["patch"]?.arrayValue else { return false }
            return patch.contains { operation in
                [operation["path"]?.stringValue, operation["from"]?.stringValue].contains { path in
                    guard let path else { return false }
                    return path == pointer || path.hasPrefix(pointer + "/")
                }
            }
        case "STARTSWITH", "STARTS_WITH", "ENDSWITH", "ENDS_WITH", "CONTAINS":
            guard let text = try argument(0)?.stringValue, let part = try argument(1)?.stringValue else { return false }
            switch name {
            case "STARTSWITH", "STARTS_WITH": return text.hasPrefix(part)
            case "ENDSWITH", "ENDS_WITH": return text.hasSuffix(part)
            default: return text.contains(part)
            }
        case "ARRAY_CONTAINS":
            // Top-level elements only, as ADT's.
            guard let array = try argument(0)?.arrayValue, let wanted = try argument(1) else { return false }
            return array.contains { compare($0, .equal, wanted) }
        default:
            throw ServiceError(code: "SqlQueryError", status: 400, "\(name) is not a function this service knows.")
        }
    }
}
