//! The assistant and the question's images, through the real Worker (issue 11): with
//! `AI_VISION=true` the provider gets each image of the question as an `image_url` part, a
//! `data:` URL of the stored bytes, beside the files described in words; without it (an
//! OpenAI-compatible server is assumed blind) only the words. The provider is the scripted
//! fake ([`FakeAi`]), which records the bodies it receives. With the local model server as the
//! image classifier, the words carry its labels: the cat photo reaches the prompt as an Egyptian
//! Mau.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use e2e::client::RoomSocket;
use e2e::fake_ai::{FakeAi, Script};
use e2e::model::{binary_path, ModelServer};
use e2e::{unique, DevOptions, DevServer, Result, Session};
use reqwest::Method;
use serde_json::Value;
use shared::protocol::http::{BeginUpload, UploadTicket};
use shared::protocol::{Attachment, ClientMessage};
use tokio::sync::OnceCell;

struct World {
    server: DevServer,
    fake: FakeAi,
    /// The image classifier, when the world has one.
    _classifier: Option<ModelServer>,
}

/// A server whose assistant sees (`AI_VISION=true`).
static SEEING: OnceCell<World> = OnceCell::const_new();
/// The same provider, `AI_VISION` unset: an OpenAI-compatible server is assumed blind.
static BLIND: OnceCell<World> = OnceCell::const_new();

async fn start(vision: Option<&str>, classifier: Option<ModelServer>) -> World {
    let fake = FakeAi::start().await.expect("fake provider");
    let mut options = DevOptions::default()
        .var("AI_PROVIDER", "openai")
        .var("AI_BASE_URL", fake.base_url())
        .var("AI_MODEL", "fake-vision-model");
    if let Some(vision) = vision {
        options = options.var("AI_VISION", vision);
    }
    if let Some(classifier) = &classifier {
        options = options.var("CLASSIFIER_URL", classifier.base_url());
    }
    let server = match DevServer::start(options).await {
        Ok(server) => server,
        Err(e) => panic!("could not start wrangler dev: {e:#}"),
    };
    World {
        server,
        fake,
        _classifier: classifier,
    }
}

async fn seeing() -> &'static World {
    SEEING.get_or_init(|| start(Some("true"), None)).await
}

async fn blind() -> &'static World {
    BLIND.get_or_init(|| start(None, None)).await
}

/// Announces and stores an image in the room (`POST …/uploads`, then `PUT` its bytes).
async fn upload(s: &Session, slug: &str, name: &str, bytes: Vec<u8>) -> Result<Attachment> {
    // The pixels, as the app measures them: a PNG's header says them at bytes 16..24.
    let side = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    let (width, height) = (side(16), side(20));
    let response = s
        .post(
            &format!("/api/rooms/{slug}/uploads"),
            &BeginUpload {
                upload_id: unique("up"),
                name: name.into(),
                size: bytes.len() as u64,
                width,
                height,
                duration_ms: None,
            },
        )
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "announcing answered {status}: {text}");
    let ticket: UploadTicket = serde_json::from_str(&text)?;
    let response = s
        .request(
            Method::PUT,
            &format!("/api/rooms/{slug}/uploads/{}", ticket.id),
        )
        .body(bytes)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "PUT answered {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// The bytes the room stored (and serves) for a file: the upload, its metadata blanked in
/// place by the upload path.
async fn stored(s: &Session, slug: &str, id: &str) -> Result<Vec<u8>> {
    let response = s.get(&format!("/api/rooms/{slug}/files/{id}")).await?;
    anyhow::ensure!(response.status().as_u16() == 200, "{}", response.status());
    Ok(response.bytes().await?.to_vec())
}

/// Asks the assistant about an uploaded image; returns the request body the provider got, the
/// file as stored, and the uploaded bytes.
async fn ask_about_a_picture(
    w: &World,
    fixture: &str,
    name: &str,
) -> Result<(Value, Vec<u8>, Vec<u8>)> {
    let ann = Session::create(&w.server, "Ann").await?;
    let room = ann.create_room(&unique("vision"), "pictures").await?;
    let slug = room.slug.as_str();
    // Only members share files.
    let (mut socket, _): (RoomSocket, _) = ann.join(slug, None).await?;
    let png = e2e::fixture_image_bytes(fixture)?;
    let file = upload(&ann, slug, name, png.clone()).await?;
    let kept = stored(&ann, slug, &file.id).await?;

    let marker = unique("v");
    w.fake
        .push(&marker, Script::words("A cup of coffee.", Duration::ZERO));
    let client_id = unique("q");
    socket
        .send_message(&ClientMessage::Send {
            client_id: client_id.clone(),
            text: format!("@assistant what is in this picture? {marker}"),
            attachments: vec![file.id.clone()],
        })
        .await?;
    socket.await_ack(&client_id).await?;

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some(body) = w.fake.requests(&marker).into_iter().next() {
            break body;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the provider was never asked about {marker}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    socket.close().await;
    Ok((body, kept, png))
}

/// The question: the prompt's last message.
fn question(body: &Value) -> Result<&Value> {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .ok_or_else(|| anyhow::anyhow!("no messages in {body}"))
}

#[tokio::test]
async fn a_model_that_sees_gets_the_stored_png_as_a_data_url_part_beside_its_description() -> Result
{
    let (body, kept, uploaded) =
        ask_about_a_picture(seeing().await, "coffee-224.png", "coffee.png").await?;
    let question = question(&body)?;
    assert_eq!(question["role"], "user");
    let parts = question["content"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("the question has no content parts: {question}"))?;
    let text = parts
        .iter()
        .find(|p| p["type"] == "text")
        .and_then(|p| p["text"].as_str())
        .unwrap_or_default();
    assert!(text.contains("what is in this picture?"), "{text}");
    assert!(text.contains("[Attached image \"coffee.png\""), "{text}");
    let urls: Vec<&str> = parts
        .iter()
        .filter(|p| p["type"] == "image_url")
        .filter_map(|p| p["image_url"]["url"].as_str())
        .collect();
    assert_eq!(urls.len(), 1, "{question}");
    let data = urls[0]
        .strip_prefix("data:image/png;base64,")
        .ok_or_else(|| anyhow::anyhow!("not a PNG data URL: {:.60}", urls[0]))?;
    let sent = STANDARD.decode(data)?;
    assert_eq!(sent, kept, "the bytes sent are the stored file's");
    assert_eq!(
        sent.len(),
        uploaded.len(),
        "the uploaded PNG, its length kept"
    );
    assert!(sent.starts_with(b"\x89PNG\r\n\x1a\n"));
    // Earlier messages (the instructions) stay plain text.
    assert!(body["messages"][0]["content"].is_string());
    Ok(())
}

#[tokio::test]
async fn without_vision_the_model_gets_only_the_description_in_words() -> Result {
    let (body, _, _) = ask_about_a_picture(blind().await, "coffee-224.png", "coffee.png").await?;
    let question = question(&body)?;
    let text = question["content"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the question is not plain text: {question}"))?;
    assert!(text.contains("what is in this picture?"), "{text}");
    assert!(text.contains("[Attached image \"coffee.png\""), "{text}");
    assert!(
        !body.to_string().contains("image_url") && !body.to_string().contains("data:image/"),
        "an image was sent to a blind model"
    );
    Ok(())
}

#[tokio::test]
async fn the_local_classifiers_labels_of_the_cat_photo_reach_the_assistants_prompt() -> Result {
    if !binary_path().is_file() {
        eprintln!(
            "skipped: the model server is not built ({}); ./scripts/build builds it",
            binary_path().display()
        );
        return Ok(());
    }
    let world = start(None, Some(ModelServer::start().await?)).await;
    let (body, _, _) = ask_about_a_picture(&world, "chelsea.png", "chelsea.png").await?;
    let text = question(&body)?["content"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the question is not plain text: {body}"))?
        .to_owned();
    assert!(
        text.contains("[Attached image \"chelsea.png\": image/png")
            && text.contains("451×300 pixels")
            && text.contains("An image classifier labelled it: Egyptian Mau (80%)"),
        "{text}"
    );
    let instructions = body["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(
        instructions.contains("you cannot see it"),
        "the model is told what it cannot see: {instructions}"
    );
    Ok(())
}
