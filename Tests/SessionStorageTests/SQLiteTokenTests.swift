import SessionCore
import Testing

@testable import SessionStorage

/// API bearer tokens in the `tokens` table.
@Suite struct SQLiteTokenTests {
    static let adminToken = APIToken(hash: [0xAA, 0x01], role: .admin, name: "ops", createdAt: Fixtures.time(1))
    static let repToken = APIToken(
        hash: [0x00, 0xFF, 0x10], role: .rep, repId: "r1", name: "Ana's desk", createdAt: Fixtures.time(2),
        revokedAt: Fixtures.time(3))
    static let serviceToken = APIToken(hash: Array(repeating: 7, count: 32), role: .service, name: "whatsapp-bridge",
                                       createdAt: Fixtures.time(2))

    @Test func tokensRoundTripEveryField() throws {
        try withStore { store, _ in
            for token in [Self.adminToken, Self.repToken, Self.serviceToken] { try store.insertToken(token) }
            #expect(try store.token(hash: [0xAA, 0x01]) == Self.adminToken)
            #expect(try store.token(hash: [0x00, 0xFF, 0x10]) == Self.repToken)
            #expect(try store.token(hash: Array(repeating: 7, count: 32)) == Self.serviceToken)
            #expect(try store.token(hash: [0xAA]) == nil)
            // Ordered by creation time, then name.
            #expect(try store.listTokens() == [Self.adminToken, Self.repToken, Self.serviceToken])
        }
    }

    @Test func revokingKeepsTheFirstRevocationTime() throws {
        try withStore { store, _ in
            try store.insertToken(Self.adminToken)
            #expect(try store.token(hash: Self.adminToken.hash)?.isActive == true)
            let revoked = try store.revokeToken(hash: Self.adminToken.hash, at: Fixtures.time(50))
            #expect(revoked.revokedAt == Fixtures.time(50))
            #expect(!revoked.isActive)
            let again = try store.revokeToken(hash: Self.adminToken.hash, at: Fixtures.time(60))
            #expect(again.revokedAt == Fixtures.time(50))
            #expect(try store.token(hash: Self.adminToken.hash) == revoked)
            #expect(expectDomainError(.notFound) { try store.revokeToken(hash: [9, 9], at: Fixtures.time(1)) }
                == "no such token")
        }
    }

    @Test func invalidAndDuplicateTokensAreRefused() throws {
        try withStore { store, _ in
            try store.insertToken(Self.adminToken)
            var duplicate = Self.serviceToken
            duplicate.hash = Self.adminToken.hash
            let message = expectDomainError(.alreadyExists) { try store.insertToken(duplicate) }
            #expect(message?.contains("whatsapp-bridge") == true)

            var repWithoutRep = Self.repToken
            repWithoutRep.repId = nil
            expectDomainError(.invalidArgument) { try store.insertToken(repWithoutRep) }
            var adminWithRep = Self.adminToken
            adminWithRep.hash = [1]
            adminWithRep.repId = "r1"
            expectDomainError(.invalidArgument) { try store.insertToken(adminWithRep) }
            var empty = Self.adminToken
            empty.hash = []
            expectDomainError(.invalidArgument) { try store.insertToken(empty) }
            #expect(try store.listTokens() == [Self.adminToken])

            // The table's CHECK constraints hold even for rows written around the store.
            let raw = try SQLiteConnection(path: store.path)
            let check = #expect(throws: SQLiteError.self) {
                try raw.run("INSERT INTO tokens VALUES (x'01', 'REP', NULL, 'x', 0, NULL, 'default')")
            }
            #expect(check?.constraint == .check)
            // An operator token belongs to no tenant; every other token to one.
            let operatorWithTenant = #expect(throws: SQLiteError.self) {
                try raw.run("INSERT INTO tokens VALUES (x'02', 'OPERATOR', NULL, 'x', 0, NULL, 'default')")
            }
            #expect(operatorWithTenant?.constraint == .check)
            let adminWithoutTenant = #expect(throws: SQLiteError.self) {
                try raw.run("INSERT INTO tokens VALUES (x'03', 'ADMIN', NULL, 'x', 0, NULL, NULL)")
            }
            #expect(adminWithoutTenant?.constraint == .check)
        }
    }

    @Test func tokensMapToActors() {
        #expect(Self.adminToken.actor == .admin("ops"))
        #expect(Self.repToken.actor == .rep("r1"))
        #expect(Self.serviceToken.actor == .service("whatsapp-bridge"))
    }
}
