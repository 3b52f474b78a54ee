/// Validation rules for identifiers and free text taken from callers.
public enum IdentifierRules {
    /// The longest channel or rep id accepted.
    public static let maxResourceIDLength = 128
    /// The longest conversation, session or message id accepted (in UTF-8 bytes).
    public static let maxExternalIDLength = 256
    /// The longest message text accepted (in UTF-8 bytes).
    public static let maxMessageTextBytes = 32_768
    /// The longest rep display name accepted (in characters).
    public static let maxDisplayNameLength = 200

    /// The longest tenant id.
    public static let maxTenantIDLength = 40

    /// Validates a tenant id: 1 to 40 characters of `a-z`, `0-9` and `-`, not starting with `-`
    /// (safe as a directory name and, with `-` as `_`, as a PostgreSQL schema name).
    public static func validateTenantID(_ id: String) throws(DomainError) {
        let bytes = Array(id.utf8)
        guard !bytes.isEmpty, bytes.count <= maxTenantIDLength else {
            throw .invalidArgument("a tenant id must be 1 to \(maxTenantIDLength) characters")
        }
        let allowed = bytes.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
        guard allowed, bytes[0] != 0x2d else {
            throw .invalidArgument("tenant id '\(id)' may hold only a-z, 0-9 and '-', and must not start with '-'")
        }
    }

    /// Validates an admin-chosen id (channel, rep): 1 to 128 characters from `[A-Za-z0-9._-]`.
    ///
    /// - Parameter what: what the id names, for the message (for example `"channel id"`).
    public static func validateResourceID(_ id: String, what: String) throws(DomainError) {
        if id.isEmpty {
            throw .invalidArgument("\(what) must not be empty")
        }
        if id.utf8.count > maxResourceIDLength {
            throw .invalidArgument("\(what) is \(id.utf8.count) characters long; at most \(maxResourceIDLength) are allowed")
        }
        let allowed = id.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        if !allowed {
            throw .invalidArgument("\(what) \"\(id)\" may only contain letters, digits, '.', '_' and '-'")
        }
    }

    /// Validates an externally chosen id (conversation, session, message): 1 to 256 UTF-8 bytes with no
    /// whitespace or control characters.
    public static func validateExternalID(_ id: String, what: String) throws(DomainError) {
        if id.isEmpty {
            throw .invalidArgument("\(what) must not be empty")
        }
        if id.utf8.count > maxExternalIDLength {
            throw .invalidArgument("\(what) is \(id.utf8.count) bytes long; at most \(maxExternalIDLength) are allowed")
        }
        // ASCII ids (nearly all) are checked byte by byte, in one pass over the contiguous UTF-8;
        // only others need Unicode's properties.
        var bytes = id
        let (ascii, asciiControl) = bytes.withUTF8 { utf8 -> (Bool, Bool) in
            var high: UInt8 = 0
            var control = false
            for byte in utf8 {
                high |= byte
                control = control || byte <= 0x20 || byte == 0x7F
            }
            return (high < 0x80, control)
        }
        if ascii ? asciiControl
            : id.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) {
            throw .invalidArgument("\(what) must not contain whitespace or control characters")
        }
    }

    /// Validates a page token (the last id of the previous page) when one is given.
    public static func validatePageToken(_ token: String?) throws(DomainError) {
        guard let token, !token.isEmpty else { return }
        try validateExternalID(token, what: "page token")
    }

    /// Validates message text: not empty, at most 32 KiB of UTF-8, no NUL.
    public static func validateMessageText(_ text: String) throws(DomainError) {
        if text.isEmpty {
            throw .invalidArgument("message text must not be empty")
        }
        if text.utf8.count > maxMessageTextBytes {
            throw .invalidArgument("message text is \(text.utf8.count) bytes long; at most \(maxMessageTextBytes) are allowed")
        }
        if text.utf8.contains(0) {
            // Every store keeps text as text: PostgreSQL refuses U+0000 outright.
            throw .invalidArgument("message text must not contain NUL characters")
        }
    }
}
