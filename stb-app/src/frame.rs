//! Decoded pictures: RGBA rows as the decoder lays them out (each row padded to its
//! stride), the rows without the padding, and a PNG file of one.

/// A decoded video frame for the UI.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// RGBA8 pixels, `stride * height` bytes.
    pub rgba: Vec<u8>,
}

impl Frame {
    /// The visible pixels of each row (`width * 4` bytes, fewer if the buffer is short).
    pub fn rows(&self) -> impl Iterator<Item = &[u8]> {
        let row = self.width as usize * 4;
        self.rgba
            .chunks(self.stride.max(1))
            .take(self.height as usize)
            .map(move |line| &line[..row.min(line.len())])
    }
}

/// Writes an RGBA frame as a PNG file.
pub fn save_png(frame: &Frame, path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    let mut pixels = Vec::with_capacity(frame.width as usize * 4 * frame.height as usize);
    for row in frame.rows() {
        pixels.extend_from_slice(row);
    }
    writer.write_image_data(&pixels)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_drop_the_stride_padding() {
        // 2x2 pixels, rows padded to 12 bytes.
        let mut rgba = vec![0u8; 24];
        rgba[..8].fill(1);
        rgba[12..20].fill(2);
        let frame = Frame {
            width: 2,
            height: 2,
            stride: 12,
            rgba,
        };
        let rows: Vec<&[u8]> = frame.rows().collect();
        assert_eq!(rows, vec![&[1u8; 8][..], &[2u8; 8][..]]);
    }
}
