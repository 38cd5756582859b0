/// How messages say counts and ranges: `1 entry`, `3 entries`, `entry 5 is missing`, `entries 5..7 are missing`
/// (Specs/format.md §12.2).
package enum Phrase {
    /// `1 entry`, `2 entries`; the plural is the singular with an `s` unless given.
    package static func count(_ n: some BinaryInteger, _ singular: String, _ plural: String? = nil) -> String {
        "\(n) " + (n == 1 ? singular : plural ?? singular + "s")
    }

    /// `entry 5 is missing` or `entries 5..7 are missing` for the entries `first` through `last`, with `predicate`
    /// (`missing`, `missing or out of order`) after `is` or `are`.
    package static func entries(_ first: UInt64, through last: UInt64, are predicate: String) -> String {
        first == last ? "entry \(first) is \(predicate)" : "entries \(first)..\(last) are \(predicate)"
    }
}
