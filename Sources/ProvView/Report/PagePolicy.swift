import ProvCrypto

/// The Content-Security-Policy of the pages the view makes (the subject report, the consent receipt; Specs/view.md
/// §8): the page may run its one script and its one style sheet, named by their SHA-256, and nothing else: no
/// other script, no network, no form, no frame, no plug-in. It is in the page (`<meta http-equiv>`, for a page
/// opened from a file) and sent as a header by a node, with `X-Content-Type-Options: nosniff` and
/// `Referrer-Policy: no-referrer`. Event fields are escaped where they are written; this is what holds if an
/// escape is ever missed.
public struct PagePolicy: Sendable, Equatable {
    public let value: String

    init(script: String, style: String) {
        func source(_ text: String) -> String { "'sha256-\(SHA256.hash(text).base64)'" }
        value =
            "default-src 'none'; script-src \(source(script)); style-src \(source(style)); img-src data:; "
            + "base-uri 'none'; form-action 'none'"
    }

    /// The `<meta>` element that carries it, for the page's head.
    var meta: String { "<meta http-equiv=\"Content-Security-Policy\" content=\"\(value)\">" }

    /// The headers a node sends with the page (the header form also forbids framing the page).
    public var headers: [(String, String)] {
        [
            ("Content-Security-Policy", value + "; frame-ancestors 'none'"), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"),
        ]
    }
}
