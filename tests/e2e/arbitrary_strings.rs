//! Arbitrary strings in every string field of every RPC (found by reflection over the published
//! descriptors, so a new RPC or field is covered without touching this file) never answer INTERNAL
//! or UNKNOWN: bad input is always the caller's INVALID_ARGUMENT (or a refusal), on every backend.
use bytes::{Buf as _, BufMut as _};
use proptest::{
    prelude::*,
    strategy::ValueTree as _,
    test_runner::{Config, TestRunner},
};
use prost_reflect::prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    metadata::MetadataValue,
};
use warden_tests::{OPERATOR_TOKEN, TestOrg, TestServer};

/// Strings a careless or hostile client sends: anything at all, control characters, and clean
/// text that passes the edge and reaches the rules and the store.
fn strings() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]{1,4}",
        "\\PC{0,80}",
        "[a-z0-9._@-]{0,40}",
        Just("x".repeat(70_000)),
    ]
}

/// Sends and receives encoded protobuf as it is, for any method of the API.
#[derive(Clone, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A request that gets past the ids: the caller's own organisation and user where asked.
fn baseline(input: &MessageDescriptor, org: &TestOrg) -> DynamicMessage {
    let mut message = DynamicMessage::new(input.clone());
    for (name, value) in [("organization_id", &org.id), ("user_id", &org.owner_id)] {
        if let Some(field) = input.get_field_by_name(name)
            && field.kind() == Kind::String
            && !field.is_list()
        {
            message.set_field(&field, Value::String(value.clone()));
        }
    }
    message
}

/// Every string field of `input`, at the top level and one level into repeated or nested messages,
/// with a setter that puts `text` there.
fn string_fields(input: &MessageDescriptor) -> Vec<(String, Vec<FieldDescriptor>)> {
    let mut found = vec![];
    for field in input.fields() {
        match field.kind() {
            Kind::String => found.push((field.name().to_owned(), vec![field])),
            Kind::Message(inner) if !inner.full_name().starts_with("google.") => {
                for nested in inner.fields().filter(|f| f.kind() == Kind::String) {
                    found.push((
                        format!("{}.{}", field.name(), nested.name()),
                        vec![field.clone(), nested],
                    ));
                }
            }
            _ => {}
        }
    }
    found
}

fn set_path(message: &mut DynamicMessage, path: &[FieldDescriptor], text: &str) {
    let wrap = |field: &FieldDescriptor, value: Value| {
        if field.is_list() {
            Value::List(vec![value])
        } else {
            value
        }
    };
    match path {
        [field] => message.set_field(field, wrap(field, Value::String(text.to_owned()))),
        [outer, inner] => {
            let Kind::Message(descriptor) = outer.kind() else {
                return;
            };
            let mut nested = DynamicMessage::new(descriptor);
            nested.set_field(inner, wrap(inner, Value::String(text.to_owned())));
            message.set_field(outer, wrap(outer, Value::Message(nested)));
        }
        _ => {}
    }
}

#[tokio::test]
async fn arbitrary_strings_in_every_field_of_every_rpc_never_answer_internal() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let pool = DescriptorPool::decode(warden_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = strings();
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    let mut calls = 0;
    for service in pool.services().filter(|s| s.package_name() == "warden.v1") {
        // Each caller where its calls are answered; everything else is refused before the rules.
        let token = match service.name() {
            "NotificationService" => OPERATOR_TOKEN.to_owned(),
            "AuthorizationService" => org.api_key.clone(),
            _ => org.owner_token.clone(),
        };
        for method in service.methods() {
            let path: PathAndQuery = format!("/{}/{}", service.full_name(), method.name())
                .parse()
                .unwrap();
            for (field_name, field_path) in string_fields(&method.input()) {
                for _ in 0..6 {
                    let text = strategy.new_tree(&mut runner).unwrap().current();
                    let mut message = baseline(&method.input(), &org);
                    set_path(&mut message, &field_path, &text);
                    let mut request = tonic::Request::new(message.encode_to_vec());
                    request.metadata_mut().insert(
                        "authorization",
                        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
                    );
                    grpc.ready().await.unwrap();
                    let answer = grpc.unary(request, path.clone(), Raw).await;
                    calls += 1;
                    if let Err(status) = answer {
                        assert!(
                            !matches!(
                                status.code(),
                                Code::Internal | Code::Unknown | Code::DataLoss
                            ),
                            "{}/{} with {field_name} = {:?}: {:?} {}",
                            service.name(),
                            method.name(),
                            text.chars().take(60).collect::<String>(),
                            status.code(),
                            status.message()
                        );
                    }
                }
            }
        }
    }
    assert!(
        calls > 300,
        "every string field of every RPC was tried ({calls} calls)"
    );
}
