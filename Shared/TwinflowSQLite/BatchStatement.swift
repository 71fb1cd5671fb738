import GRDB
import GRDBSQLite

/// A statement a store's writer runs for every item of a batch, bound and stepped through SQLite's C
/// API: GRDB's argument boxing and row copies cost more than such a statement itself. The SQLite
/// statement stays owned by GRDB's statement cache; only the writer's transaction uses it.
public struct BatchStatement {
    private let statement: Statement
    private let db: Database

    public init(_ db: Database, _ sql: String) throws {
        self.statement = try db.cachedStatement(sql: sql)
        self.db = db
    }

    private var handle: OpaquePointer { statement.sqliteStatement }

    /// A value to bind.
    public enum Parameter {
        case integer(Int64)
        case double(Double)
        case text(String)
        /// UTF-8 text already encoded.
        case textBytes([UInt8])
        case blob([UInt8])
    }

    /// Binds the parameters (in order) and steps once: true when a row is ready to read, false when
    /// the statement is done. Call ``reset()`` after reading.
    @discardableResult
    public func step(_ parameters: Parameter...) throws -> Bool {
        sqlite3_reset(handle)
        for (offset, parameter) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch parameter {
            case .integer(let value):
                code = sqlite3_bind_int64(handle, index, value)
            case .double(let value):
                code = sqlite3_bind_double(handle, index, value)
            case .text(let value):
                var value = value
                code = value.withUTF8 { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), Self.transient) }
            case .textBytes(let bytes):
                code = bytes.withUnsafeBufferPointer { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), Self.transient) }
            case .blob(let bytes):
                code = bytes.withUnsafeBufferPointer { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Self.transient) }
            }
            guard code == SQLITE_OK else { throw failure(code) }
        }
        return try next()
    }

    /// Steps to the next row of a statement already stepped by ``step(_:)``: true when a row is ready.
    public func next() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            let error = failure(code)
            sqlite3_reset(handle)
            throw error
        }
    }

    public func reset() {
        sqlite3_reset(handle)
    }

    public func integer(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    public func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

    /// Rows the last step changed.
    public var changes: Int32 { sqlite3_changes(db.sqliteConnection) }

    private func failure(_ code: Int32) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: statement.sql)
    }

    /// SQLite copies what it binds: the Swift buffers live only during the call.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
