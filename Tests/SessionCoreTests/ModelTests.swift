import SessionCore
import Testing

@Suite("Model")
struct ModelTests {
    @Test("Durations and timestamps are whole milliseconds and saturate instead of trapping")
    func timeArithmetic() {
        let t = Timestamp(millisecondsSinceEpoch: 1_000)
        #expect(t + .seconds(2) == Timestamp(millisecondsSinceEpoch: 3_000))
        #expect((t + .minutes(1)) - t == .seconds(60))
        #expect(Milliseconds.hours(24) == .days(1))
        #expect(Milliseconds.minutes(10).value == 600_000)
        #expect(Timestamp(millisecondsSinceEpoch: .max) + .days(1) == Timestamp(millisecondsSinceEpoch: .max))
        #expect(Milliseconds.days(.max).value == .max)
        #expect(Milliseconds.hours(25).description == "1d 1h")
        #expect(Milliseconds.seconds(30).description == "30s")
    }

    @Test("The eleven channel types fall into Enhanced Chat, Enhanced Messaging, BYOC and standard families")
    func channelFamilies() {
        #expect(ChannelType.allCases.count == 11)
        let chat: [ChannelType] = [.enhancedInAppChat, .enhancedWebChatV1, .enhancedWebChatV2]
        let messaging: [ChannelType] = [.enhancedWhatsApp, .enhancedFacebookMessenger, .enhancedSMS,
                                        .enhancedAppleMessagesForBusiness, .enhancedLINE]
        #expect(chat.allSatisfy { $0.family == .enhancedChat })
        #expect(messaging.allSatisfy { $0.family == .enhancedMessaging })
        #expect(ChannelType.bringYourOwnChannel.family == .bringYourOwnChannel)
        #expect(ChannelType.standardSMS.family == .standard)
        #expect(ChannelType.standardFacebookMessenger.family == .standard)
        #expect(ChannelType.enhancedAppleMessagesForBusiness.rawValue == "ENHANCED_APPLE_MESSAGES_FOR_BUSINESS")
    }

    @Test("Enhanced Chat needs the user licence and the rep permission; the others need Messaging Agent")
    func requiredPermissions() {
        #expect(ChannelFamily.enhancedChat.requiredPermissions == [.enhancedChatUser, .enhancedChatRep])
        #expect(ChannelFamily.enhancedMessaging.requiredPermissions == [.messagingAgent])
        #expect(ChannelFamily.bringYourOwnChannel.requiredPermissions == [.messagingAgent])
        #expect(ChannelFamily.standard.requiredPermissions == [.messagingAgent])
        let rep = Rep(id: "r1", displayName: "R", capacity: 1, permissions: [.enhancedChatUser], idleSince: .epoch)
        #expect(rep.missingPermissions(for: .enhancedChat) == [.enhancedChatRep])
        #expect(rep.missingPermissions(for: .enhancedMessaging) == [.messagingAgent])
    }

    @Test("Channel defaults: weight 1, no inactivity timeout, 24 hour auto-end, action visible")
    func channelDefaults() throws {
        let channel = Channel(id: "web-eu", type: .enhancedWebChatV2)
        #expect(channel.capacityWeight == 1)
        #expect(channel.customerInactivityTimeout == nil)
        #expect(channel.inactiveAutoEndAfter == .hours(24))
        #expect(channel.inactivateActionVisible)
        #expect(channel.capacityModel == .tabBased)
        try channel.validate()
    }

    @Test("Channel ids are 1 to 128 characters of letters, digits, dot, underscore and dash")
    func channelIDs() throws {
        try Channel(id: "web_eu.v2-1", type: .enhancedWebChatV2).validate()
        try Channel(id: String(repeating: "a", count: 128), type: .enhancedSMS).validate()
        expectDomainError(.invalidArgument, "channel id must not be empty") {
            try Channel(id: "", type: .enhancedSMS).validate()
        }
        expectDomainError(.invalidArgument, "at most 128") {
            try Channel(id: String(repeating: "a", count: 129), type: .enhancedSMS).validate()
        }
        expectDomainError(.invalidArgument, "\"web eu\"", "letters, digits") {
            try Channel(id: "web eu", type: .enhancedSMS).validate()
        }
    }

    @Test("Capacity weight must be between 1 and 100")
    func weightRange() throws {
        try Channel(id: "c", type: .enhancedSMS, capacityWeight: 100).validate()
        for weight in [0, -1, 101] {
            expectDomainError(.invalidArgument, "channel c", "capacity weight \(weight)", "between 1 and 100") {
                try Channel(id: "c", type: .enhancedSMS, capacityWeight: weight).validate()
            }
        }
    }

    @Test("Customer inactivity timeout is allowed only on Enhanced Chat and BYOC, from 1 minute to 24 hours")
    func inactivityTimeoutRules() throws {
        for type in ChannelType.allCases {
            let channel = Channel(id: "c", type: type, customerInactivityTimeout: .minutes(5))
            if type.family == .enhancedChat || type == .bringYourOwnChannel {
                try channel.validate()
            } else {
                expectDomainError(.invalidArgument, "channel c is \(type.rawValue)", "Enhanced Chat and BRING_YOUR_OWN_CHANNEL") {
                    try channel.validate()
                }
            }
        }
        try Channel(id: "c", type: .enhancedInAppChat, customerInactivityTimeout: .minutes(1)).validate()
        try Channel(id: "c", type: .enhancedInAppChat, customerInactivityTimeout: .hours(24)).validate()
        for timeout: Milliseconds in [.seconds(59), .hours(24) + .milliseconds(1), .zero, .minutes(-5)] {
            expectDomainError(.invalidArgument, "customer inactivity timeout", "between 1 minute and 24 hours") {
                try Channel(id: "c", type: .bringYourOwnChannel, customerInactivityTimeout: timeout).validate()
            }
        }
    }

    @Test("Inactive auto-end delay ranges from 10 minutes to 7 days")
    func autoEndRange() throws {
        try Channel(id: "c", type: .enhancedSMS, inactiveAutoEndAfter: .minutes(10)).validate()
        try Channel(id: "c", type: .enhancedSMS, inactiveAutoEndAfter: .days(7)).validate()
        for delay: Milliseconds in [.minutes(9), .days(7) + .seconds(1)] {
            expectDomainError(.invalidArgument, "auto-end", "between 10 minutes and 7 days") {
                try Channel(id: "c", type: .enhancedSMS, inactiveAutoEndAfter: delay).validate()
            }
        }
    }

    @Test("Rep capacity must be between 1 and 100 and the display name not empty")
    func repValidation() throws {
        try Rep(id: "r1", displayName: "Ann", capacity: 100, idleSince: .epoch).validate()
        for capacity in [0, 101] {
            expectDomainError(.invalidArgument, "rep r1 has capacity \(capacity)", "between 1 and 100") {
                try Rep(id: "r1", displayName: "Ann", capacity: capacity, idleSince: .epoch).validate()
            }
        }
        expectDomainError(.invalidArgument, "display name") {
            try Rep(id: "r1", displayName: "  ", capacity: 1, idleSince: .epoch).validate()
        }
        expectDomainError(.invalidArgument, "rep id") {
            try Rep(id: "r/1", displayName: "Ann", capacity: 1, idleSince: .epoch).validate()
        }
    }

    @Test("Free capacity never goes negative when a rep is over capacity")
    func freeCapacity() {
        let rep = Rep(id: "r1", displayName: "Ann", capacity: 2, usedCapacity: 3, idleSince: .epoch)
        #expect(rep.freeCapacity == 0)
    }

    @Test("Message ids and texts are validated")
    func messageValidation() throws {
        let world = World()
        try world.addChannel("web")
        expectDomainError(.invalidArgument, "message id must not be empty") {
            try world.customerWrites("c1", on: "web", id: "")
        }
        expectDomainError(.invalidArgument, "message text must not be empty") {
            try world.customerWrites("c1", on: "web", id: "m1", text: "")
        }
        expectDomainError(.invalidArgument, "conversation id must not contain whitespace") {
            try world.customerWrites("c 1", on: "web", id: "m1")
        }
        expectDomainError(.invalidArgument, "at most 32768") {
            try world.customerWrites("c1", on: "web", id: "m1", text: String(repeating: "x", count: 40_000))
        }
        expectDomainError(.invalidArgument, "must not contain NUL") {
            try world.customerWrites("c1", on: "web", id: "m1", text: "a\u{0}b")
        }
    }
}

@Test("holdsPermissions (routing's check) agrees with missingPermissions for every family and permission set")
func holdsPermissionsAgrees() {
    let all = Permission.allCases
    for family in [ChannelFamily.enhancedChat, .enhancedMessaging, .bringYourOwnChannel, .standard] {
        for mask in 0..<(1 << all.count) {
            let held = Set(all.indices.filter { mask & (1 << $0) != 0 }.map { all[$0] })
            let rep = Rep(id: "r", displayName: "R", capacity: 1, permissions: held, idleSince: .epoch)
            #expect(rep.holdsPermissions(for: family) == rep.missingPermissions(for: family).isEmpty, "\(family) \(held)")
        }
    }
}
