/// A raw-value enum that hashes its position among its cases. Without this, such an enum hashes
/// its raw *string* (the standard library's RawRepresentable implementation): every
/// `Set<Permission>` lookup and every key holding a `SessionStatus` hashed a string.
public protocol CaseHashable: CaseIterable, Hashable, RawRepresentable where AllCases == [Self] {}

extension CaseHashable {
    @inlinable
    public func hash(into hasher: inout Hasher) { hasher.combine(Self.allCases.firstIndex(of: self)!) }

    @inlinable
    public var hashValue: Int {
        var hasher = Hasher()
        hash(into: &hasher)
        return hasher.finalize()
    }
}
