//! Images in a chat, decoded and checked in Rust before any reaches
//! llama.cpp: base64 data URLs (the server turns a fetched URL into one),
//! in the formats OpenAI accepts (PNG, JPEG, WebP, GIF's first frame),
//! within `[limits]`. What reaches the projector is plain RGB pixels, so
//! no bytes of a request are ever parsed by llama.cpp's own loaders.

use std::io::Cursor;

use base64::Engine as _;
use ferrite_openapi::chat::{image_url_of, ChatMessage, ContentPart, MessageContent};
use ferrite_openapi::validate::ImageLimits;
use image::{ImageFormat, ImageReader};
use sha2::{Digest, Sha256};

/// One decoded image.
pub struct Image {
    pub width: u32,
    pub height: u32,
    /// `width × height` RGB triples.
    pub rgb: Vec<u8>,
    /// sha256 of the size and pixels: the same picture sent as PNG or JPEG
    /// at the same pixels is the same image (prefix reuse keys on it).
    pub hash: [u8; 32],
}

/// The image parts of `messages`, in order, with their field names.
pub fn parts(messages: &[ChatMessage]) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let Some(MessageContent::Parts(parts)) = &m.content else {
            continue;
        };
        for (j, p) in parts.iter().enumerate() {
            if let ContentPart::ImageUrl { image_url } = p {
                let url = image_url_of(image_url).unwrap_or("");
                out.push((format!("messages[{i}].content[{j}].image_url"), url));
            }
        }
    }
    out
}

/// Whether the chat carries any image.
pub fn any(messages: &[ChatMessage]) -> bool {
    messages.iter().any(|m| match &m.content {
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .any(|p| matches!(p, ContentPart::ImageUrl { .. })),
        _ => false,
    })
}

/// One image from a `data:image/...;base64,` URL.
pub fn decode(url: &str, limits: &ImageLimits) -> Result<Image, String> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err("An image must be a base64 `data:` URL here (fetching image URLs is off: see `images.fetch`).".into());
    };
    let Some((_mime, data)) = rest.split_once(";base64,") else {
        return Err("An image data URL must be base64: `data:image/png;base64,...`.".into());
    };
    // Base64 is 4 characters per 3 bytes: refuse before decoding.
    if data.len() / 4 * 3 > limits.max_image_bytes.saturating_add(3) {
        return Err(format!(
            "The image is over {} bytes (`limits.max_image_bytes`).",
            limits.max_image_bytes
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("The image's base64 is invalid: {e}."))?;
    let format = image::guess_format(&bytes)
        .ok()
        .filter(|f| {
            matches!(
                f,
                ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif
            )
        })
        .ok_or("The data is not a PNG, JPEG, WebP or GIF image.")?;
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), format);
    let side = u32::try_from(limits.max_image_pixels).unwrap_or(u32::MAX);
    let mut bounds = image::Limits::default();
    bounds.max_image_width = Some(side);
    bounds.max_image_height = Some(side);
    // The decoder's own buffers: a little over the RGBA pixels allowed.
    bounds.max_alloc = Some(limits.max_image_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(bounds.clone());
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| format!("The image cannot be read: {e}."))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels || width == 0 || height == 0 {
        return Err(format!(
            "The image is {width}x{height}: more than {} pixels (`limits.max_image_pixels`), or empty.",
            limits.max_image_pixels
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), format);
    reader.limits(bounds);
    let rgb = reader
        .decode()
        .map_err(|e| format!("The image cannot be decoded: {e}."))?
        .into_rgb8();
    let mut h = Sha256::new();
    h.update(width.to_le_bytes());
    h.update(height.to_le_bytes());
    h.update(rgb.as_raw());
    Ok(Image {
        width,
        height,
        rgb: rgb.into_raw(),
        hash: h.finalize().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, seed: u8) -> String {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([x as u8 ^ seed, y as u8, seed.wrapping_mul(7)])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(out.into_inner());
        format!("data:image/png;base64,{b64}")
    }

    #[test]
    fn decodes_and_hashes_pixels() {
        let limits = ImageLimits::default();
        let a = decode(&png(8, 4, 1), &limits).unwrap();
        assert_eq!((a.width, a.height, a.rgb.len()), (8, 4, 96));
        assert_eq!(a.hash, decode(&png(8, 4, 1), &limits).unwrap().hash);
        assert_ne!(a.hash, decode(&png(8, 4, 2), &limits).unwrap().hash);
    }

    #[test]
    fn refuses_what_is_not_an_image_within_limits() {
        let limits = ImageLimits {
            max_image_pixels: 100,
            ..ImageLimits::default()
        };
        let text = base64::engine::general_purpose::STANDARD.encode(b"not an image at all");
        let cases = [
            ("https://example.com/cat.png".to_string(), "data:"),
            ("data:image/png,abc".to_string(), "base64"),
            ("data:image/png;base64,!!!".to_string(), "base64"),
            (format!("data:image/png;base64,{text}"), "not a PNG"),
            (png(20, 20, 0), "pixels"),
        ];
        for (url, says) in cases {
            let err = decode(&url, &limits).err().unwrap();
            assert!(err.contains(says), "{url:.40}: {err}");
        }
    }
}
