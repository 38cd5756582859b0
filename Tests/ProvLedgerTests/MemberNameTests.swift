import Testing

@testable import ProvLedger

/// Pages show a company by its display name (Specs/format.md §9.1): a name is what it looks like (no
/// bidirectional override or zero-width character), and no two members' names look alike.
@Suite struct MemberNameTests {
    func make(_ names: [String: String]) throws -> Consortium {
        try Consortium.withFreshKeys(name: "acme", orgs: names.keys.sorted()) { names[$0]! }.consortium
    }

    @Test func distinctPlainNamesAreTaken() throws {
        let c = try make(["brand": "Northwind Brand", "retail": "Northwind Retail", "bank": "Banque Ōkubo"])
        #expect(c.members.count == 3)
    }

    @Test(arguments: [
        ["brand": "Northwind Retail", "retail": "Northwind Retail"],
        ["brand": "NORTHWIND  retail", "retail": "Northwind Retail"],
        ["brand": "Ｎｏｒｔｈｗｉｎｄ Retail", "retail": "Northwind Retail"],
    ])
    func namesThatLookAlikeAreRefused(_ names: [String: String]) throws {
        #expect {
            try make(names)
        } throws: { ($0 as? LedgerError)?.message.contains("its name reads as the name of member") == true }
    }

    @Test(arguments: ["Retail\u{202E}liateR", "Ret\u{200B}ail", "Retail\u{2028}Bank"])
    func namesWithInvisibleOrReorderingCharactersAreRefused(_ name: String) throws {
        #expect {
            try make(["brand": "Brand", "retail": name])
        } throws: { ($0 as? LedgerError)?.message.contains("without control, format or line-separator") == true }
    }
}
