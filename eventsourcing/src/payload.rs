//! Payload encoding and decoding for the event enums that `#[entity]` generates, written once
//! here instead of once per event in every expansion.
//!
//! An event's payload is its variant's fields as a JSON object (`{}` for an event without
//! fields). The generated enum derives serde's `Serialize` and `Deserialize` (externally
//! tagged, so `{"TrickAdded":{"trick":".."}}`); the adapters below drive those derived impls
//! with the variant taken from the topic, so that only the inner object is written and read.
//! Field attributes (`#[serde(rename, default, with, ..)]`) apply as derived.

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, VariantAccess};
use serde::ser::{
    self, Impossible, Serialize, SerializeStruct, SerializeStructVariant, Serializer,
};

use crate::domain::{DomainError, DomainEvent};

/// Encodes the payload of `event`, a value of an enum whose derived `Serialize` writes a
/// struct or unit variant.
///
/// # Errors
/// [`DomainError::Encode`] when a field's `Serialize` impl fails.
pub fn encode_variant<E: DomainEvent + Serialize>(event: &E) -> Result<Vec<u8>, DomainError> {
    let mut out = Vec::with_capacity(64);
    event
        .serialize(VariantFields(&mut serde_json::Serializer::new(&mut out)))
        .map_err(|source| DomainError::Encode {
            topic: event.topic().to_owned(),
            source,
        })?;
    Ok(out)
}

/// The variant name of a canonical `topic` of `E` (its registration's `event`).
fn variant_of<E: DomainEvent>(topic: &str) -> Result<&'static str, DomainError> {
    E::registrations()
        .iter()
        .find(|r| r.topic == topic)
        .map(|r| r.event)
        .ok_or_else(|| crate::__private::unknown_topic::<E>(topic))
}

fn payload_error(topic: &str, source: serde_json::Error) -> DomainError {
    DomainError::Payload {
        topic: topic.to_owned(),
        source,
    }
}

/// Decodes the payload bytes of the canonical `topic` into `E`'s variant for it.
///
/// # Errors
/// [`DomainError::UnknownTopic`] for a topic of another type, [`DomainError::Payload`] when
/// the bytes are not the event's JSON.
pub fn decode_variant<E>(topic: &str, payload: &[u8]) -> Result<E, DomainError>
where
    E: DomainEvent + de::DeserializeOwned,
{
    let variant = variant_of::<E>(topic)?;
    let mut de = serde_json::Deserializer::from_slice(payload);
    let event = E::deserialize(VariantOf {
        variant,
        payload: &mut de,
    })
    .and_then(|event| de.end().map(|()| event))
    .map_err(|source| payload_error(topic, source))?;
    Ok(event)
}

/// A serializer that writes only the fields of the enum variant it is given.
struct VariantFields<S>(S);

fn not_a_variant<E: ser::Error>() -> E {
    E::custom("an event payload is written from a struct or unit variant")
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Err(not_a_variant())
        })*
    };
}

impl<S: Serializer> Serializer for VariantFields<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = Impossible<S::Ok, S::Error>;
    type SerializeStructVariant = Fields<S::SerializeStruct>;

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_struct(variant, 0)?.end()
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(self.0)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct(variant, len).map(Fields)
    }

    refuse! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_variant())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_variant())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_a_variant())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_a_variant())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_a_variant())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_a_variant())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_a_variant())
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Err(not_a_variant())
    }
}

/// A struct variant's fields, written as a struct.
struct Fields<S>(S);

impl<S: SerializeStruct> SerializeStructVariant for Fields<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// A deserializer presenting `payload` as the content of the enum variant `variant`.
struct VariantOf<D> {
    variant: &'static str,
    payload: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for VariantOf<D> {
    type Error = D::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> EnumAccess<'de> for VariantOf<D> {
    type Error = D::Error;
    type Variant = Content<D>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Content<D>), D::Error> {
        let name: de::value::StrDeserializer<'_, D::Error> = self.variant.into_deserializer();
        let variant = seed.deserialize(name)?;
        Ok((variant, Content(self.payload)))
    }
}

/// The content of the variant: the payload.
struct Content<D>(D);

/// What an event without fields accepts: `{}`.
#[derive(serde::Deserialize)]
#[serde(crate = "serde")]
struct NoFields {}

impl<'de, D: Deserializer<'de>> VariantAccess<'de> for Content<D> {
    type Error = D::Error;

    fn unit_variant(self) -> Result<(), D::Error> {
        <NoFields as de::Deserialize>::deserialize(self.0).map(|NoFields {}| ())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, D::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: de::Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct("", fields, visitor)
    }
}
