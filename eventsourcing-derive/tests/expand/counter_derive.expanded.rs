const _: () = {
    fn __es_assert_payload<
        T: ::eventsourcing::__private::serde::Serialize
            + ::eventsourcing::__private::serde::de::DeserializeOwned,
    >() {}
    const _: fn() = __es_assert_payload::<u32>;
    const _: fn() = __es_assert_payload::<u32>;
    #[derive(::eventsourcing::__private::serde::Deserialize)]
    #[serde(crate = "::eventsourcing::__private::serde")]
    struct __EsDecodeStarted {}
    #[derive(::eventsourcing::__private::serde::Serialize)]
    #[serde(crate = "::eventsourcing::__private::serde")]
    struct __EsEncodeIncremented<'__es> {
        by: &'__es u32,
    }
    #[derive(::eventsourcing::__private::serde::Deserialize)]
    #[serde(crate = "::eventsourcing::__private::serde")]
    struct __EsDecodeIncremented {
        by: u32,
    }
    #[automatically_derived]
    impl ::eventsourcing::__private::DomainEvent for CounterEvent {
        fn registrations() -> &'static [::eventsourcing::__private::TopicRegistration] {
            static REGISTRATIONS: [::eventsourcing::__private::TopicRegistration; 3usize] = [
                ::eventsourcing::__private::TopicRegistration {
                    topic: "Counter.Started",
                    entity: "Counter",
                    event: "Started",
                    type_name: ::eventsourcing::__private::std::concat!(
                        ::eventsourcing::__private::std::module_path!(), "::",
                        ::eventsourcing::__private::std::stringify!(CounterEvent)
                    ),
                    version: 1,
                    aliases: &[],
                    upcasters: &[],
                    creates: false,
                },
                ::eventsourcing::__private::TopicRegistration {
                    topic: "Counter.Incremented",
                    entity: "Counter",
                    event: "Incremented",
                    type_name: ::eventsourcing::__private::std::concat!(
                        ::eventsourcing::__private::std::module_path!(), "::",
                        ::eventsourcing::__private::std::stringify!(CounterEvent)
                    ),
                    version: 1,
                    aliases: &[],
                    upcasters: &[],
                    creates: false,
                },
                ::eventsourcing::__private::TopicRegistration {
                    topic: "Counter.Reset",
                    entity: "Counter",
                    event: "Reset",
                    type_name: ::eventsourcing::__private::std::concat!(
                        ::eventsourcing::__private::std::module_path!(), "::",
                        ::eventsourcing::__private::std::stringify!(CounterEvent)
                    ),
                    version: 1,
                    aliases: &[],
                    upcasters: &[],
                    creates: false,
                },
            ];
            &REGISTRATIONS
        }
        fn registration(
            &self,
        ) -> &'static ::eventsourcing::__private::TopicRegistration {
            let registrations = <Self as ::eventsourcing::__private::DomainEvent>::registrations();
            match self {
                Self::Started { .. } => &registrations[0],
                Self::Incremented { .. } => &registrations[1],
                Self::Reset { .. } => &registrations[2],
            }
        }
        fn encode(
            &self,
        ) -> ::eventsourcing::__private::std::result::Result<
            ::eventsourcing::__private::std::vec::Vec<u8>,
            ::eventsourcing::__private::DomainError,
        > {
            let encoded = match self {
                Self::Started { .. } => {
                    ::eventsourcing::__private::std::result::Result::Ok(
                        ::eventsourcing::__private::std::vec::Vec::from(&b"{}"[..]),
                    )
                }
                Self::Incremented { by } => {
                    ::eventsourcing::__private::serde_json::to_vec(
                        &__EsEncodeIncremented { by },
                    )
                }
                Self::Reset(inner) => {
                    ::eventsourcing::__private::serde_json::to_vec(inner)
                }
            };
            encoded
                .map_err(|source| ::eventsourcing::__private::DomainError::Encode {
                    topic: ::eventsourcing::__private::std::borrow::ToOwned::to_owned(
                        ::eventsourcing::__private::DomainEvent::topic(self),
                    ),
                    source,
                })
        }
        fn decode(
            topic: &str,
            payload: &[u8],
        ) -> ::eventsourcing::__private::std::result::Result<
            Self,
            ::eventsourcing::__private::DomainError,
        > {
            let decoded = match topic {
                "Counter.Started" => {
                    ::eventsourcing::__private::serde_json::from_slice::<
                        __EsDecodeStarted,
                    >(payload)
                        .map(|__EsDecodeStarted {}| Self::Started {})
                }
                "Counter.Incremented" => {
                    ::eventsourcing::__private::serde_json::from_slice::<
                        __EsDecodeIncremented,
                    >(payload)
                        .map(|__EsDecodeIncremented { by }| Self::Incremented { by })
                }
                "Counter.Reset" => {
                    ::eventsourcing::__private::serde_json::from_slice::<u32>(payload)
                        .map(Self::Reset)
                }
                _ => {
                    return ::eventsourcing::__private::std::result::Result::Err(
                        ::eventsourcing::__private::unknown_topic::<Self>(topic),
                    );
                }
            };
            decoded
                .map_err(|source| ::eventsourcing::__private::DomainError::Payload {
                    topic: ::eventsourcing::__private::std::borrow::ToOwned::to_owned(
                        topic,
                    ),
                    source,
                })
        }
        fn decode_value(
            topic: &str,
            value: ::eventsourcing::__private::serde_json::Value,
        ) -> ::eventsourcing::__private::std::result::Result<
            Self,
            ::eventsourcing::__private::DomainError,
        > {
            let decoded = match topic {
                "Counter.Started" => {
                    ::eventsourcing::__private::serde_json::from_value::<
                        __EsDecodeStarted,
                    >(value)
                        .map(|__EsDecodeStarted {}| Self::Started {})
                }
                "Counter.Incremented" => {
                    ::eventsourcing::__private::serde_json::from_value::<
                        __EsDecodeIncremented,
                    >(value)
                        .map(|__EsDecodeIncremented { by }| Self::Incremented { by })
                }
                "Counter.Reset" => {
                    ::eventsourcing::__private::serde_json::from_value::<u32>(value)
                        .map(Self::Reset)
                }
                _ => {
                    return ::eventsourcing::__private::std::result::Result::Err(
                        ::eventsourcing::__private::unknown_topic::<Self>(topic),
                    );
                }
            };
            decoded
                .map_err(|source| ::eventsourcing::__private::DomainError::Payload {
                    topic: ::eventsourcing::__private::std::borrow::ToOwned::to_owned(
                        topic,
                    ),
                    source,
                })
        }
    }
    ::eventsourcing::__private::inventory::submit! {
        ::eventsourcing::__private::EventTypeRegistration { type_name :
        ::eventsourcing::__private::std::concat!(::eventsourcing::__private::std::module_path!(),
        "::", ::eventsourcing::__private::std::stringify!(CounterEvent)), topics : <
        CounterEvent as ::eventsourcing::__private::DomainEvent > ::registrations, }
    }
};
