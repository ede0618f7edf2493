const _: () = {
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
            static REGISTRATIONS: [::eventsourcing::__private::TopicRegistration; 3] = [
                ::eventsourcing::__private::TopicRegistration {
                    topic: "Counter.Started",
                    entity: "Counter",
                    event: "Started",
                    type_name: ::std::concat!(
                        ::std::module_path!(), "::", ::std::stringify!(CounterEvent)
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
                    type_name: ::std::concat!(
                        ::std::module_path!(), "::", ::std::stringify!(CounterEvent)
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
                    type_name: ::std::concat!(
                        ::std::module_path!(), "::", ::std::stringify!(CounterEvent)
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
            let __es_registrations = <Self as ::eventsourcing::__private::DomainEvent>::registrations();
            match self {
                Self::Started { .. } => &__es_registrations[0],
                Self::Incremented { .. } => &__es_registrations[1],
                Self::Reset { .. } => &__es_registrations[2],
            }
        }
        fn encode(
            &self,
        ) -> ::std::result::Result<
            ::std::vec::Vec<u8>,
            ::eventsourcing::__private::DomainError,
        > {
            let __es_encoded = match self {
                Self::Started { .. } => {
                    ::std::result::Result::Ok(::std::vec::Vec::from(&b"{}"[..]))
                }
                Self::Incremented { by } => {
                    ::eventsourcing::__private::serde_json::to_vec(
                        &__EsEncodeIncremented { by },
                    )
                }
                Self::Reset(__es_inner) => {
                    ::eventsourcing::__private::serde_json::to_vec(__es_inner)
                }
            };
            __es_encoded
                .map_err(|__es_source| ::eventsourcing::__private::DomainError::Encode {
                    topic: ::std::borrow::ToOwned::to_owned(
                        ::eventsourcing::__private::DomainEvent::topic(self),
                    ),
                    source: __es_source,
                })
        }
        fn decode(
            __es_topic: &str,
            __es_payload: &[u8],
        ) -> ::std::result::Result<Self, ::eventsourcing::__private::DomainError> {
            let __es_decoded = match __es_topic {
                "Counter.Started" => {
                    ::eventsourcing::__private::serde_json::from_slice::<
                        __EsDecodeStarted,
                    >(__es_payload)
                        .map(|__EsDecodeStarted {}| Self::Started {})
                }
                "Counter.Incremented" => {
                    ::eventsourcing::__private::serde_json::from_slice::<
                        __EsDecodeIncremented,
                    >(__es_payload)
                        .map(|__EsDecodeIncremented { by }| Self::Incremented { by })
                }
                "Counter.Reset" => {
                    ::eventsourcing::__private::serde_json::from_slice::<
                        u32,
                    >(__es_payload)
                        .map(Self::Reset)
                }
                _ => {
                    return ::std::result::Result::Err(
                        ::eventsourcing::__private::unknown_topic::<Self>(__es_topic),
                    );
                }
            };
            __es_decoded
                .map_err(|__es_source| ::eventsourcing::__private::DomainError::Payload {
                    topic: ::std::borrow::ToOwned::to_owned(__es_topic),
                    source: __es_source,
                })
        }
    }
    ::eventsourcing::__private::inventory::submit! {
        ::eventsourcing::__private::EventTypeRegistration { type_name :
        ::std::concat!(::std::module_path!(), "::", ::std::stringify!(CounterEvent)),
        topics : < CounterEvent as ::eventsourcing::__private::DomainEvent >
        ::registrations, }
    }
};
