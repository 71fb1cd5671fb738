import Foundation
import PostgresNIO

/// A PostgreSQL address as users write it: `postgres://user:password@host:port/database`, with an
/// optional `?sslmode=disable|prefer|require` (the default `prefer` tries TLS and falls back).
public struct DatabaseURL: Sendable, Hashable {
    public var username: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var sslMode: String

    /// Why a URL was refused, in words for the one-line startup error.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(_ text: String) throws(Invalid) {
        let schemes = ["postgres://", "postgresql://"]
        guard let scheme = schemes.first(where: { text.hasPrefix($0) }) else {
            throw Invalid(description: "a URL starting with postgres:// (postgres://user:password@host:port/database)")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw Invalid(description: "a database name after the host: postgres://…@host:port/database")
        }
        let database = String(rest[rest.index(after: slash)...]).removingPercentEncoding
        let authority = rest[..<slash]
        guard let at = authority.lastIndex(of: "@") else { throw Invalid(description: "a user name: postgres://user@host/database") }
        let credentials = authority[..<at]
        let address = authority[authority.index(after: at)...]
        let user = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let username = user.first.map(String.init)?.removingPercentEncoding, !username.isEmpty, let database, !database.isEmpty
        else { throw Invalid(description: "a user name and a database: postgres://user@host/database") }
        self.username = username
        self.password = user.count > 1 ? String(user[1]).removingPercentEncoding : nil
        if let colon = address.lastIndex(of: ":"), !address.hasSuffix("]") {
            guard let port = Int(address[address.index(after: colon)...]), (1...65_535).contains(port) else {
                throw Invalid(description: "a port from 1 to 65535 after the host")
            }
            self.host = String(address[..<colon])
            self.port = port
        } else {
            self.host = String(address)
            self.port = 5432
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw Invalid(description: "a host: postgres://user@host/database") }
        self.database = database
        var sslMode = "prefer"
        for pair in query.split(separator: "&") where pair.hasPrefix("sslmode=") {
            sslMode = String(pair.dropFirst("sslmode=".count))
        }
        guard ["disable", "prefer", "require"].contains(sslMode) else { throw Invalid(description: "sslmode disable, prefer or require") }
        self.sslMode = sslMode
    }

    /// The client's configuration, with at most `connections` connections; `parameters`: run-time
    /// settings of each session (see ``sessionParameters(lockTimeout:)``), sent when it starts.
    public func clientConfiguration(connections: Int, parameters: [(String, String)] = []) throws -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS =
            switch sslMode {
            case "disable": .disable
            case "require": .require(.makeClientConfiguration())
            default: .prefer(.makeClientConfiguration())
            }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = connections
        configuration.options.additionalStartupParameters = parameters
        return configuration
    }

    /// The URL of another database on the same server, as users write it (the password kept).
    public func naming(database name: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let user = username.addingPercentEncoding(withAllowedCharacters: allowed) ?? username
        let secret = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0) } ?? ""
        let address = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)\(secret)@\(address):\(port)/\(name)?sslmode=\(sslMode)"
    }

    /// The configuration of a single connection of its own (one a component holds, outside any pool).
    /// `parameters`: run-time settings of the session (`lock_timeout`, …), sent when it starts.
    public func connectionConfiguration(parameters: [(String, String)] = []) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS =
            switch sslMode {
            case "disable": .disable
            case "require": .require(try .init(configuration: .makeClientConfiguration()))
            default: .prefer(try .init(configuration: .makeClientConfiguration()))
            }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.additionalStartupParameters = parameters
        return configuration
    }
}

extension String {
    /// `%40` as `@`, and so on; nil when an escape is malformed.
    fileprivate var removingPercentEncoding: String? {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next(), let low = iterator.next(), let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            else { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
