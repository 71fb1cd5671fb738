import Foundation

extension String {
    /// This text as one segment of a URL's path, as twin-service's REST paths take an ID: every
    /// character a path would read otherwise (`/`, `;`, `?`, `#`, `%`, spaces, non-ASCII) percent-encoded.
    public var urlPathSegment: String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/;?#")
        return addingPercentEncoding(withAllowedCharacters: allowed) ?? self
    }

    /// This text as a value in a URL's query (`&`, `=`, `+`, `;` and `#` encoded too).
    public var urlQueryValue: String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+;#")
        return addingPercentEncoding(withAllowedCharacters: allowed) ?? self
    }
}
