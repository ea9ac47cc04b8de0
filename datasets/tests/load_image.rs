//! `load_image` on files written to a temporary folder.

use std::fs;
use std::path::{Path, PathBuf};

use ::image::{ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use datasets::{load_image, Crop, Error, Preprocess, RgbImage};
use tempfile::TempDir;

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

fn pattern(width: u32, height: u32) -> ::image::RgbImage {
    ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([
            (x * 5 + y * 3) as u8,
            (x * 3 + y * 11 + 7) as u8,
            (250 - x - 2 * y) as u8,
        ])
    })
}

fn save_png(dir: &TempDir, name: &str, img: &::image::RgbImage) -> PathBuf {
    let path = dir.path().join(name);
    img.save_with_format(&path, ImageFormat::Png)
        .expect("write png");
    path
}

/// The 8-bit value of channel `c` at `(x, y)`.
fn pixel(image: &RgbImage, c: usize, x: usize, y: usize) -> u8 {
    let v = image.data[c * image.height * image.width + y * image.width + x];
    ((v + 1.0) * 127.5).round() as u8
}

#[test]
fn png_round_trip_is_exact() {
    let dir = temp_dir();
    let img = pattern(11, 11);
    let path = save_png(&dir, "square.png", &img);
    let loaded = load_image(&path, &Preprocess::eval(11), 0).expect("load");
    assert_eq!((loaded.height, loaded.width), (11, 11));
    assert_eq!(loaded, RgbImage::from_rgb8(&img));
    assert_eq!(loaded.to_rgb8(), img);
}

#[test]
fn center_crop_of_a_wide_image_keeps_the_middle_third() {
    // Red, green and blue thirds of a 3:1 image: resized to 30x10, then columns 10..20.
    let dir = temp_dir();
    let img = ImageBuffer::from_fn(90, 30, |x, _| match x / 30 {
        0 => Rgb([255, 0, 0]),
        1 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    });
    let path = save_png(&dir, "wide.png", &img);
    let out = load_image(&path, &Preprocess::eval(10), 0).expect("load");
    assert_eq!((out.height, out.width), (10, 10));
    for y in 0..10 {
        // The outermost columns touch the colour boundaries, where the filter blends.
        for x in 1..9 {
            assert_eq!(
                [0, 1, 2].map(|c| pixel(&out, c, x, y)),
                [0, 255, 0],
                "({x}, {y})"
            );
        }
    }
}

#[test]
fn center_crop_of_a_tall_image_keeps_the_middle_rows() {
    // 12 wide, 36 high, size 24: upscaled to 24x72, rows 24..48 come from source rows 12..24.
    let dir = temp_dir();
    let img = ImageBuffer::from_fn(12, 36, |_, y| {
        if (12..24).contains(&y) {
            Rgb([200, 100, 50])
        } else {
            Rgb([0, 0, 0])
        }
    });
    let path = save_png(&dir, "tall.png", &img);
    let out = load_image(&path, &Preprocess::eval(24), 0).expect("load");
    assert_eq!((out.height, out.width), (24, 24));
    // Catmull-Rom reaches two source rows (four output rows) across the boundaries.
    for y in 4..20 {
        for x in 0..24 {
            assert_eq!(
                [0, 1, 2].map(|c| pixel(&out, c, x, y)),
                [200, 100, 50],
                "({x}, {y})"
            );
        }
    }
}

#[test]
fn small_images_are_upscaled() {
    let dir = temp_dir();
    let path = save_png(&dir, "small.png", &pattern(4, 3));
    let out = load_image(&path, &Preprocess::eval(16), 0).expect("load");
    assert_eq!(
        (out.height, out.width, out.data.len()),
        (16, 16, 3 * 16 * 16)
    );
}

#[test]
fn random_crop_and_flip_are_deterministic_per_seed() {
    let dir = temp_dir();
    let path = save_png(&dir, "wide.png", &pattern(48, 20));
    let preprocess = Preprocess::train(16);
    assert_eq!(preprocess.crop, Crop::Random);
    let first = load_image(&path, &preprocess, 42).expect("load");
    assert_eq!(first, load_image(&path, &preprocess, 42).expect("load"));
    let outputs: Vec<_> = (0..16)
        .map(|seed| load_image(&path, &preprocess, seed).expect("load"))
        .collect();
    assert!(
        outputs.iter().any(|o| *o != outputs[0]),
        "all seeds gave one crop"
    );

    // Flip alone on a square image: both orientations appear across seeds.
    let square = save_png(&dir, "square.png", &pattern(16, 16));
    let flip_only = Preprocess {
        flip: true,
        ..Preprocess::eval(16)
    };
    let plain = load_image(&square, &Preprocess::eval(16), 0).expect("load");
    let flipped: Vec<bool> = (0..16)
        .map(|seed| load_image(&square, &flip_only, seed).expect("load") != plain)
        .collect();
    assert!(flipped.contains(&true) && flipped.contains(&false));
}

#[test]
fn grayscale_png_becomes_rgb() {
    let dir = temp_dir();
    let path = dir.path().join("gray.png");
    ImageBuffer::from_fn(5, 5, |x, y| Luma([(x * 50 + y) as u8]))
        .save(&path)
        .expect("write");
    let out = load_image(&path, &Preprocess::eval(5), 0).expect("load");
    assert_eq!([0, 1, 2].map(|c| pixel(&out, c, 3, 2)), [152, 152, 152]);
}

#[test]
fn grayscale_alpha_png_drops_alpha() {
    let dir = temp_dir();
    let path = dir.path().join("gray_alpha.png");
    ImageBuffer::from_fn(5, 5, |x, _| LumaA([(x * 60) as u8, 7]))
        .save(&path)
        .expect("write");
    let out = load_image(&path, &Preprocess::eval(5), 0).expect("load");
    assert_eq!([0, 1, 2].map(|c| pixel(&out, c, 4, 0)), [240, 240, 240]);
}

#[test]
fn rgb16_png_is_scaled_to_8_bits() {
    let dir = temp_dir();
    let path = dir.path().join("deep.png");
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(6, 6, |x, y| {
        Rgb([(x * 40) as u16 * 257, (y * 40) as u16 * 257, 65535])
    });
    img.save(&path).expect("write 16-bit png");
    let out = load_image(&path, &Preprocess::eval(6), 0).expect("load");
    assert_eq!([0, 1, 2].map(|c| pixel(&out, c, 5, 2)), [200, 80, 255]);
}

#[test]
fn rgba_png_drops_alpha() {
    let dir = temp_dir();
    let path = dir.path().join("rgba.png");
    ImageBuffer::from_fn(6, 6, |x, y| {
        Rgba([x as u8 * 10, y as u8 * 10, 99, (x * y) as u8])
    })
    .save(&path)
    .expect("write rgba png");
    let out = load_image(&path, &Preprocess::eval(6), 0).expect("load");
    assert_eq!([0, 1, 2].map(|c| pixel(&out, c, 0, 0)), [0, 0, 99]);
    assert_eq!([0, 1, 2].map(|c| pixel(&out, c, 4, 5)), [40, 50, 99]);
}

#[test]
fn jpeg_decodes_close_to_the_original() {
    let dir = temp_dir();
    let path = dir.path().join("photo.JPG");
    let img = ImageBuffer::from_pixel(16, 16, Rgb([180u8, 60, 90]));
    img.save_with_format(&path, ImageFormat::Jpeg)
        .expect("write jpeg");
    let out = load_image(&path, &Preprocess::eval(16), 0).expect("load");
    for (c, expected) in [180i32, 60, 90].into_iter().enumerate() {
        let got = i32::from(pixel(&out, c, 8, 8));
        assert!(
            (got - expected).abs() <= 4,
            "channel {c}: {got} vs {expected}"
        );
    }
}

#[test]
fn png_content_with_a_jpeg_name_still_loads() {
    let dir = temp_dir();
    let img = pattern(8, 8);
    let path = dir.path().join("actually_png.jpg");
    img.save_with_format(&path, ImageFormat::Png)
        .expect("write png");
    let out = load_image(&path, &Preprocess::eval(8), 0).expect("load");
    assert_eq!(out.to_rgb8(), img);
}

fn assert_decode_error(result: datasets::Result<RgbImage>, path: &Path) {
    match result {
        Err(err @ Error::Decode { .. }) => {
            let Error::Decode { path: p, .. } = &err else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
            assert!(std::error::Error::source(&err).is_some());
        }
        other => panic!(
            "expected Error::Decode for {}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn truncated_png_is_a_decode_error() {
    let dir = temp_dir();
    let path = save_png(&dir, "cut.png", &pattern(32, 32));
    let bytes = fs::read(&path).expect("read png");
    fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate png");
    assert_decode_error(load_image(&path, &Preprocess::eval(8), 0), &path);
}

#[test]
fn corrupt_png_body_is_a_decode_error() {
    let dir = temp_dir();
    let path = save_png(&dir, "corrupt.png", &pattern(32, 32));
    let mut bytes = fs::read(&path).expect("read png");
    // Keep the signature and header, scramble the rest.
    for (i, b) in bytes.iter_mut().enumerate().skip(40) {
        *b = (i * 31 % 251) as u8;
    }
    fs::write(&path, &bytes).expect("write corrupt png");
    assert_decode_error(load_image(&path, &Preprocess::eval(8), 0), &path);
}

#[test]
fn text_file_with_jpeg_name_is_a_decode_error() {
    let dir = temp_dir();
    let path = dir.path().join("x.jpg");
    fs::write(&path, "this is not an image\n").expect("write text");
    assert_decode_error(load_image(&path, &Preprocess::eval(8), 0), &path);
}

#[test]
fn empty_file_is_a_decode_error() {
    let dir = temp_dir();
    let path = dir.path().join("empty.png");
    fs::write(&path, b"").expect("write empty file");
    assert_decode_error(load_image(&path, &Preprocess::eval(8), 0), &path);
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = temp_dir();
    let path = dir.path().join("nowhere.png");
    match load_image(&path, &Preprocess::eval(8), 0) {
        Err(err @ Error::Io { .. }) => {
            assert!(err.to_string().contains("nowhere.png"), "{err}");
            let Error::Io { path: p, source } = err else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn folder_named_like_an_image_is_an_io_error() {
    let dir = temp_dir();
    let path = dir.path().join("folder.png");
    fs::create_dir(&path).expect("create folder");
    assert!(matches!(
        load_image(&path, &Preprocess::eval(8), 0),
        Err(Error::Io { path: p, .. }) if p == path
    ));
}

#[test]
fn preprocess_serialises_to_json() {
    let preprocess = Preprocess::train(256);
    let json = serde_json::to_string(&preprocess).expect("serialise");
    assert_eq!(
        json,
        r#"{"size":256,"resize":256,"crop":"Random","flip":true}"#
    );
    let back: Preprocess = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, preprocess);
}
