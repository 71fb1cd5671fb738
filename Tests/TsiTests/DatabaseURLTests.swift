import Testing
import TwinflowPostgres

@Suite struct DatabaseURLTests {
    @Test func readsTheUsualForms() throws {
        let full = try DatabaseURL("postgres://twin%40flow:p%3Ass@db.local:6543/time_series?sslmode=disable")
        #expect(full == DatabaseURL.expected("twin@flow", "p:ss", "db.local", 6543, "time_series", "disable"))
        let short = try DatabaseURL("postgresql://twinflow@postgres/twinflow")
        #expect(short == DatabaseURL.expected("twinflow", nil, "postgres", 5432, "twinflow", "prefer"))
        #expect(try DatabaseURL("postgres://u@[::1]:5433/d").host == "::1")
        #expect(try DatabaseURL("postgres://u@[::1]:5433/d").port == 5433)
    }

    @Test(arguments: [
        "mysql://u@h/d", "postgres://h/d", "postgres://u@h", "postgres://u@h:0/d", "postgres://u@h:x/d", "postgres://u@/d",
        "postgres://u@h/d?sslmode=verify-full", "postgres://u@h/",
    ])
    func refusesWhatItCannotUse(text: String) {
        #expect(throws: DatabaseURL.Invalid.self) { try DatabaseURL(text) }
    }
}

extension DatabaseURL {
    static func expected(_ user: String, _ password: String?, _ host: String, _ port: Int, _ database: String, _ sslMode: String) -> DatabaseURL? {
        var url = try? DatabaseURL("postgres://x@y/z")
        url?.username = user
        url?.password = password
        url?.host = host
        url?.port = port
        url?.database = database
        url?.sslMode = sslMode
        return url
    }
}
