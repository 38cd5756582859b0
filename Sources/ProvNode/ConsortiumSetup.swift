import Foundation
import ProvCrypto
import ProvLedger

/// `prov nodes init`: a ready consortium on this machine, one folder per company (Specs/protocol.md §2).
public enum ConsortiumSetup {
    public struct Result: Sendable {
        public var descriptor: String
        public var nodeConfigs: [String: String]
    }

    /// Makes `dir/consortium.json`, `dir/link.key` and, per org, `dir/<org>/node.json`, `dir/<org>/<org>.key`
    /// and the data folder `dir/<org>/data`. Peer listeners get `basePort + 1 + i`, APIs `basePort + 101 + i`,
    /// on 127.0.0.1. Nothing that exists is overwritten: the call checks every path first.
    public static func initialize(
        directory dir: String, orgs: [String], consortium name: String, basePort: Int, names: [String: String] = [:]
    ) throws(LedgerError) -> Result {
        guard !orgs.isEmpty else { throw LedgerError(.config, "--orgs needs at least one org id") }
        guard Set(orgs).count == orgs.count else { throw LedgerError(.config, "--orgs lists an org twice") }
        for o in orgs where !Vocabulary.isOrgID(o) {
            throw LedgerError(.config, "'\(o)' is not an org id (1-32 of a-z 0-9 -, not starting with -)")
        }
        guard Vocabulary.isConsortiumName(name) else {
            throw LedgerError(.config, "consortium name '\(name)' must be 1-64 of a-z 0-9 . - (starting alphanumeric)")
        }
        guard basePort >= 0, basePort + 100 + orgs.count <= 65535 else {
            throw LedgerError(.config, "--base-port \(basePort) leaves no room for \(orgs.count) nodes below 65536")
        }
        let fm = FileManager.default
        var planned = [dir + "/consortium.json", dir + "/link.key"]
        for o in orgs { planned += [dir + "/" + o] }
        for p in planned where fm.fileExists(atPath: p) {
            throw LedgerError(.io, "\(p) exists: prov nodes init does not overwrite anything; choose a new --dir")
        }
        do {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch { throw LedgerError(.io, "cannot create \(dir): \(error.localizedDescription)") }

        var members: [Consortium.Member] = []
        var signers: [(String, NoteSigner)] = []
        for (i, org) in orgs.enumerated() {
            let signer: NoteSigner
            do { signer = try NoteSigner(name: "\(name)/\(org)", privateKey: .generate()) } catch {
                throw LedgerError(.io, "cannot make a key for \(org): \(error)")
            }
            signers.append((org, signer))
            members.append(
                Consortium.Member(
                    org: org, name: names[org] ?? org, origin: "\(name)/\(org)", key: signer.verifierKey,
                    peer: "127.0.0.1:\(basePort + 1 + i)", api: "127.0.0.1:\(basePort + 101 + i)"))
        }
        do {
            try LinkKey.create(dir + "/link.key")
            let linkKey = try LinkKey.load(dir + "/link.key")
            let consortium = try Consortium(name: name, members: members, linkKeyFingerprint: linkKey.fingerprint)
            try consortium.write(to: dir + "/consortium.json")
        } catch let e as LedgerError { throw e } catch { throw LedgerError(.io, "\(error)") }

        var configs: [String: String] = [:]
        for (i, (org, signer)) in signers.enumerated() {
            let nodeDir = dir + "/" + org
            do {
                try fm.createDirectory(atPath: nodeDir + "/data", withIntermediateDirectories: true)
                chmod(nodeDir + "/data", 0o755)
                try SigningKeyFile.write(signer, to: "\(nodeDir)/\(org).key")
                let json = NodeConfig.json(
                    org: org, consortium: "../consortium.json", key: "\(org).key", linkKey: "../link.key",
                    data: "data", peer: members[i].peer!, api: members[i].api!, token: try newToken(),
                    auditorToken: try newToken())
                // The file holds bearer tokens: owner-only, like the keys.
                try SecretFile.create(nodeDir + "/node.json", bytes: Array((json.prettySerialized + "\n").utf8))
            } catch let e as LedgerError { throw e } catch let e as CryptoError {
                throw LedgerError(.io, e.reason)
            } catch { throw LedgerError(.io, "cannot write \(nodeDir): \(error.localizedDescription)") }
            configs[org] = nodeDir + "/node.json"
        }
        return Result(descriptor: dir + "/consortium.json", nodeConfigs: configs)
    }

    /// 32 random bytes, base64url without padding.
    static func newToken() throws -> String {
        Data(try SecureRandom.bytes(32)).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
