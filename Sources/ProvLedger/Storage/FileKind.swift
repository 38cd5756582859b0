/// What a file given where text was expected seems to be, said without any of its bytes. Key files end up on the
/// wrong option (`--consortium link.key`), and an error message must never echo a byte of a secret: a parser's
/// "unexpected character" would show the key's first byte.
package enum FileKind {
    /// Why `bytes` are not the text a `<what>` should be (`is binary, not a JSON consortium descriptor`), naming
    /// the signing-key and linking-key files this project writes; nil when they are text.
    package static func misplaced(_ bytes: [UInt8], expected what: String) -> String? {
        if bytes.starts(with: "PRIVATE+KEY+".utf8) { return "is a signing key file, not \(what)" }
        guard !isText(bytes) else { return nil }
        if bytes.count == 32 { return "is binary (32 bytes, as a linking key file is), not \(what)" }
        return "is binary, not \(what)"
    }

    /// UTF-8 without NUL, DEL or any other control character but tab, line feed and carriage return.
    package static func isText(_ bytes: some Collection<UInt8>) -> Bool {
        var continuation = 0
        var lowest: UInt8 = 0x80
        var highest: UInt8 = 0xBF
        for b in bytes {
            if continuation > 0 {
                guard b >= lowest && b <= highest else { return false }
                continuation -= 1
                lowest = 0x80
                highest = 0xBF
                continue
            }
            switch b {
            case 0x09, 0x0A, 0x0D, 0x20...0x7E: continue
            case 0xC2...0xDF: continuation = 1
            case 0xE0:
                continuation = 2
                lowest = 0xA0  // no overlong forms
            case 0xE1...0xEC, 0xEE...0xEF: continuation = 2
            case 0xED:
                continuation = 2
                highest = 0x9F  // no UTF-16 surrogates
            case 0xF0:
                continuation = 3
                lowest = 0x90
            case 0xF1...0xF3: continuation = 3
            case 0xF4:
                continuation = 3
                highest = 0x8F  // nothing above U+10FFFF
            default: return false
            }
        }
        return continuation == 0
    }
}
