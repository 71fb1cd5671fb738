extension DigitalTwinGraph {
    /// The longest twin, relationship or event route id, in Unicode scalars: as long as an IoT Hub
    /// device id, which twins often mirror, and short enough to keep keys, events and URLs small.
    public static let maximumIDLength = 128

    /// Refuses an id a new twin, relationship or route cannot have: empty, blank, longer than
    /// ``maximumIDLength`` or holding a control character (such as NUL or a line break).
    static func checkID(_ id: String, of kind: String, code: String = "InvalidArgument") throws(ServiceError) {
        let problem: String?
        if id.unicodeScalars.allSatisfy(\.properties.isWhitespace) {
            problem = "must not be empty or blank"
        } else if id.unicodeScalars.count > maximumIDLength {
            problem = "must be at most \(maximumIDLength) characters long"
        } else if id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            problem = "must not hold control characters"
        } else {
            problem = nil
        }
        guard let problem else { return }
        throw ServiceError(code: code, status: 400, "The \(kind) id \(problem).")
    }
}
