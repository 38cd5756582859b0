import ProvCrypto

extension Consortium {
    /// A consortium, its members' signers and its linking key, all made here in memory with fresh random keys: for
    /// benchmarks and tests. Nothing is written; the keys are nowhere but in the result. Member `org` gets the
    /// origin `<name>/<org>` and the display name `displayName(org)`.
    package static func withFreshKeys(
        name: String, orgs: [String], displayName: (String) -> String = { $0 }
    ) throws -> (consortium: Consortium, signers: [String: NoteSigner], linkKey: LinkKey) {
        var signers: [String: NoteSigner] = [:]
        var members: [Member] = []
        for org in orgs {
            let signer = try NoteSigner(name: "\(name)/\(org)", privateKey: .generate())
            signers[org] = signer
            members.append(
                Member(
                    org: org, name: displayName(org), origin: "\(name)/\(org)", key: signer.verifierKey, peer: nil,
                    api: nil))
        }
        let linkKey = try LinkKey(bytes: SecureRandom.bytes(32))
        let consortium = try Consortium(name: name, members: members, linkKeyFingerprint: linkKey.fingerprint)
        return (consortium, signers, linkKey)
    }
}
