//! Image classification with EfficientNet-Lite0 (ImageNet-1k), on candle's CPU backend: the
//! offline half of the "multi-modal assistant" issue, so an uploaded picture can be named
//! without a cloud model.
//!
//! The network is written out here from the architecture facts in `shared/models/README.md`
//! (stem, 16 inverted-residual blocks without squeeze-and-excitation, ReLU6, TensorFlow "SAME"
//! padding, head, average pool, fully connected) over the weights in
//! `efficientnet-lite0.safetensors`. [`Classifier::load`] reads and checks every tensor once;
//! [`Classifier::classify`] decodes an upload (PNG, JPEG, WebP, GIF), resizes it the way the
//! reference did, runs the network and returns the five likeliest classes.
//!
//! All the CPU work of one classification (decoding included) runs in the classifier's own rayon
//! pool, so `--vision-threads` bounds what classification takes from llama.cpp's cores, and
//! concurrent callers simply take turns in that pool.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::{
    bail, CpuStorage, CustomOp1, Device, InplaceOp1, InplaceOp2, Layout, Shape, Tensor,
};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use rayon::prelude::*;

/// The weights' file name inside a model directory.
pub const MODEL_FILE: &str = "efficientnet-lite0.safetensors";
/// The class names' file name, beside the weights: a JSON list of 1,000 strings.
pub const NAMES_FILE: &str = "imagenet1k-names.json";
/// How many classes [`Classifier::classify`] returns, likeliest first.
pub const TOP_K: usize = 5;
/// The network's input side in pixels.
pub const INPUT_SIZE: u32 = 224;
/// The most pixels an upload may decode to. Far above any photo worth classifying at 224×224,
/// and it bounds memory before decoding: a 25 MB PNG of one colour can claim 100,000×100,000
/// pixels, and its decoded RGBA would be 40 GB.
pub const MAX_PIXELS: u64 = 50_000_000;

/// Batch norm's epsilon in this model (TensorFlow's default for EfficientNet, not PyTorch's 1e-5).
const BN_EPS: f32 = 1e-3;
/// ImageNet's per-channel mean and standard deviation, RGB, on the [0, 1] scale.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
const STEM_CHANNELS: usize = 32;
const HEAD_CHANNELS: usize = 1280;
const CLASSES: usize = 1000;

/// One stage of blocks: how many, kernel side, stride of the first block, expansion ratio, input
/// and output channels (the README's blocks table; later blocks of a stage have stride 1 and
/// input = output).
struct Stage {
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    input: usize,
    output: usize,
}

const STAGES: [Stage; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

const fn stage(
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    input: usize,
    output: usize,
) -> Stage {
    Stage {
        repeats,
        kernel,
        stride,
        expand,
        input,
        output,
    }
}

/// Why a model could not be loaded or an image not classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisionError {
    /// The model's files are missing, unreadable, or not EfficientNet-Lite0's tensors.
    Model(String),
    /// The bytes are not a complete image in a supported format (PNG, JPEG, WebP, GIF).
    InvalidImage(String),
    /// The image is valid but has more than [`MAX_PIXELS`] pixels.
    ImageTooLarge {
        /// Its width in pixels.
        width: u32,
        /// Its height in pixels.
        height: u32,
    },
    /// The network failed on a decoded image: a bug, not the caller's fault.
    Inference(String),
}

impl std::fmt::Display for VisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VisionError::Model(reason) => write!(f, "vision model: {reason}"),
            VisionError::InvalidImage(reason) => write!(f, "invalid image: {reason}"),
            VisionError::ImageTooLarge { width, height } => write!(
                f,
                "the image is {width}×{height} pixels, more than {MAX_PIXELS}"
            ),
            VisionError::Inference(reason) => write!(f, "classification failed: {reason}"),
        }
    }
}

impl std::error::Error for VisionError {}

fn model_error(what: &str) -> impl Fn(candle_core::Error) -> VisionError + '_ {
    move |e| VisionError::Model(format!("{what}: {e}"))
}

fn inference_error(e: candle_core::Error) -> VisionError {
    VisionError::Inference(e.to_string())
}

/// The container an image came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP (lossy or lossless).
    Webp,
    /// GIF (the first frame is classified).
    Gif,
}

impl ImageKind {
    /// The name sent as `format`: `"png"`, `"jpeg"`, `"webp"` or `"gif"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpeg",
            ImageKind::Webp => "webp",
            ImageKind::Gif => "gif",
        }
    }

    fn of(format: ImageFormat) -> Option<ImageKind> {
        match format {
            ImageFormat::Png => Some(ImageKind::Png),
            ImageFormat::Jpeg => Some(ImageKind::Jpeg),
            ImageFormat::WebP => Some(ImageKind::Webp),
            ImageFormat::Gif => Some(ImageKind::Gif),
            _ => None,
        }
    }
}

/// One class and how likely the model finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The ImageNet-1k class index (0..1000).
    pub index: u32,
    /// The class's name.
    pub name: String,
    /// Softmax probability over the 1,000 classes.
    pub probability: f32,
}

/// What the model saw in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The [`TOP_K`] likeliest classes, likeliest first.
    pub labels: Vec<Label>,
    /// The image's width in pixels, as displayed (after its EXIF orientation).
    pub width: u32,
    /// The image's height in pixels, as displayed.
    pub height: u32,
    /// The image's container.
    pub format: ImageKind,
}

/// A decoded upload.
struct Picture {
    image: DynamicImage,
    format: ImageKind,
}

/// Decodes PNG, JPEG, WebP or GIF bytes (the format sniffed from the bytes, not trusted from a
/// header), upright per its EXIF orientation. Never panics on hostile input: every failure is
/// [`VisionError::InvalidImage`] or [`VisionError::ImageTooLarge`].
fn decode(bytes: &[u8]) -> Result<Picture, VisionError> {
    let invalid = |e: image::ImageError| VisionError::InvalidImage(e.to_string());
    let format = image::guess_format(bytes)
        .map_err(|_| VisionError::InvalidImage("not a PNG, JPEG, WebP or GIF image".to_string()))?;
    let kind = ImageKind::of(format).ok_or_else(|| {
        VisionError::InvalidImage(format!(
            "{} images are not supported; send PNG, JPEG, WebP or GIF",
            format.to_mime_type()
        ))
    })?;
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(invalid)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(VisionError::InvalidImage("the image has no pixels".into()));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(VisionError::ImageTooLarge { width, height });
    }
    // Phones store photos sideways and say so in EXIF; the model was trained on upright ones.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(invalid)?;
    image.apply_orientation(orientation);
    Ok(Picture {
        image,
        format: kind,
    })
}

/// The network's input: RGB (alpha dropped, as the reference's `convert("RGB")` does), resized
/// to 224×224 with a triangle (bilinear) filter that widens to average all covered pixels when
/// shrinking (like Pillow's bilinear; plain 2×2 bilinear sampling aliases a 4000-pixel photo),
/// scaled to [0, 1], normalised per channel, channels first: shape (1, 3, 224, 224).
fn input_tensor(image: &DynamicImage) -> candle_core::Result<Tensor> {
    let mut rgb = image.to_rgb8();
    if rgb.dimensions() != (INPUT_SIZE, INPUT_SIZE) {
        rgb = image::imageops::resize(&rgb, INPUT_SIZE, INPUT_SIZE, FilterType::Triangle);
    }
    let plane = (INPUT_SIZE * INPUT_SIZE) as usize;
    let mut data = vec![0f32; 3 * plane];
    for (i, pixel) in rgb.pixels().enumerate() {
        for c in 0..3 {
            data[c * plane + i] = (f32::from(pixel[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    let side = INPUT_SIZE as usize;
    Tensor::from_vec(data, (1, 3, side, side), &Device::Cpu)
}

/// TensorFlow's "SAME" padding along one axis: the output has ceil(size / stride) positions, and
/// the padding that needs is split with the odd pixel after (bottom or right), which is where
/// TensorFlow-trained weights expect it. Returns (before, after, output size).
fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
    let output = size.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2, output)
}

/// Softmax over `logits`, then the `k` likeliest classes in order (ties by index).
fn top_labels(logits: &[f32], names: &[String], k: usize) -> Vec<Label> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Summed in f64: a thousand small terms lose digits in f32.
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| Label {
            index: i as u32,
            name: names.get(i).cloned().unwrap_or_default(),
            probability: (f64::from(logits[i] - max).exp() / sum) as f32,
        })
        .collect()
}

/// The model's tensors by name, checked against the shapes the architecture needs.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, VisionError> {
        let tensor = self
            .0
            .get(name)
            .ok_or_else(|| VisionError::Model(format!("tensor {name} is missing")))?;
        if tensor.dims() != shape {
            return Err(VisionError::Model(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                tensor.dims()
            )));
        }
        // The kernels here work on f32; a half-precision copy of the weights would load too.
        tensor
            .to_dtype(candle_core::DType::F32)
            .map_err(model_error(name))
    }

    /// A convolution's weight (`out` channels first) with the batch norm after it folded in:
    /// BN at inference is `scale·x + shift` per channel with fixed statistics, so it becomes
    /// `weight·scale` and a bias `beta − mean·scale`. That saves a normalisation pass over every
    /// activation map per layer, and leaves one bias add that the kernels fuse with ReLU6.
    fn conv_bn(
        &self,
        conv: &str,
        bn: &str,
        shape: &[usize],
    ) -> Result<(Tensor, Tensor), VisionError> {
        let out = shape[0];
        let weight = self.get(&format!("{conv}.weight"), shape)?;
        let gamma = self.get(&format!("{bn}.weight"), &[out])?;
        let beta = self.get(&format!("{bn}.bias"), &[out])?;
        let mean = self.get(&format!("{bn}.running_mean"), &[out])?;
        let var = self.get(&format!("{bn}.running_var"), &[out])?;
        let fold = || -> candle_core::Result<(Tensor, Tensor)> {
            let scale = (gamma / (var + f64::from(BN_EPS))?.sqrt()?)?;
            let mut per_channel = vec![1; shape.len()];
            per_channel[0] = out;
            let weight = weight.broadcast_mul(&scale.reshape(per_channel)?)?;
            let bias = (beta - (mean * scale)?)?;
            Ok((weight, bias))
        };
        fold().map_err(model_error(conv))
    }
}

/// A 1×1 convolution (batch norm folded in) on a (channels, height, width) map: a matrix
/// product over channels, which candle hands to gemm, then the bias (and ReLU6) in place.
struct Pointwise {
    /// (out, in).
    weight: Tensor,
    bias: ChannelBias,
}

impl Pointwise {
    fn load(
        weights: &Weights,
        conv: &str,
        bn: &str,
        input: usize,
        output: usize,
        relu6: bool,
    ) -> Result<Pointwise, VisionError> {
        let (weight, bias) = weights.conv_bn(conv, bn, &[output, input, 1, 1])?;
        let reshape = || -> candle_core::Result<(Tensor, Vec<f32>)> {
            Ok((weight.reshape((output, input))?, bias.to_vec1()?))
        };
        let (weight, bias) = reshape().map_err(model_error(conv))?;
        Ok(Pointwise {
            weight,
            bias: ChannelBias { bias, relu6 },
        })
    }

    /// `relu6?(W·x + b)`, plus `residual` when given.
    fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (channels, height, width) = x.dims3()?;
        let y = self
            .weight
            .matmul(&x.reshape((channels, height * width))?)?
            .reshape((self.weight.dims()[0], height, width))?;
        // In place is safe: `y` is the product just made, its storage shared with nothing.
        match residual {
            Some(residual) => y.inplace_op2(residual, &self.bias)?,
            None => y.inplace_op1(&self.bias)?,
        }
        Ok(y)
    }
}

/// A depthwise convolution (one k×k filter per channel) with "SAME" padding, its folded batch
/// norm bias and ReLU6, as one pass over a (channels, height, width) map.
///
/// Why a kernel of our own: candle's `conv2d` with `groups = channels` splits the input into one
/// tensor per channel and runs a full convolution on each (up to 1,152 per layer, each with its
/// own im2col buffer), and it pads symmetrically only, so TensorFlow's asymmetric padding would
/// cost another copy. A direct loop is a few lines and touches each input pixel k² times.
struct Depthwise {
    /// (channels, k, k), row major, batch norm folded in.
    weight: Vec<f32>,
    bias: Vec<f32>,
    kernel: usize,
    stride: usize,
}

impl Depthwise {
    fn load(
        weights: &Weights,
        prefix: &str,
        channels: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Depthwise, VisionError> {
        let (weight, bias) = weights.conv_bn(
            &format!("{prefix}._depthwise_conv"),
            &format!("{prefix}._bn1"),
            &[channels, 1, kernel, kernel],
        )?;
        let to_vecs = || -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
            Ok((weight.flatten_all()?.to_vec1()?, bias.to_vec1()?))
        };
        let (weight, bias) = to_vecs().map_err(model_error(prefix))?;
        Ok(Depthwise {
            weight,
            bias,
            kernel,
            stride,
        })
    }
}

impl CustomOp1 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv-same-relu6"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (channels, height, width) = layout.shape().dims3()?;
        let k = self.kernel;
        if channels * k * k != self.weight.len() {
            bail!(
                "depthwise conv over {channels} channels has {} weights",
                self.weight.len()
            );
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("depthwise conv needs a contiguous input");
        };
        let input = &storage.as_slice::<f32>()?[start..end];
        let geometry = Geometry::new(height, width, k, self.stride);
        let mut output = vec![0f32; channels * geometry.out_h * geometry.out_w];
        output
            .par_chunks_mut(geometry.out_h * geometry.out_w)
            .zip(input.par_chunks(height * width))
            .zip(self.weight.par_chunks(k * k))
            .zip(self.bias.par_iter())
            .for_each(|(((out, plane), filter), &bias)| {
                geometry.channel(plane, filter, bias, out);
            });
        let shape = Shape::from((channels, geometry.out_h, geometry.out_w));
        Ok((CpuStorage::F32(output), shape))
    }
}

/// The sizes of one depthwise convolution, and where each kernel column reads.
///
/// The input's columns are split into `stride` phases (phase p holds columns p, p + s, p + 2s, …
/// of every row), so that for a given kernel column the inputs of consecutive output pixels are
/// consecutive in one phase: the inner loop is then a contiguous multiply-add that the compiler
/// vectorises, for stride 2 as for stride 1 (where the one phase is the input itself).
struct Geometry {
    height: usize,
    kernel: usize,
    stride: usize,
    /// Zero rows above the input ("SAME" padding's smaller half).
    top: usize,
    out_h: usize,
    out_w: usize,
    /// Columns per phase: ceil(width / stride), the last padded with a zero when needed.
    phase_width: usize,
    /// Per kernel column: its phase, the first and end output columns whose input is inside the
    /// row (the others fall on zero padding and are skipped), and the phase column of `first`.
    taps: Vec<ColumnTap>,
}

struct ColumnTap {
    phase: usize,
    first: usize,
    end: usize,
    from: usize,
}

impl Geometry {
    fn new(height: usize, width: usize, kernel: usize, stride: usize) -> Geometry {
        let (top, _, out_h) = same_padding(height, kernel, stride);
        let (left, _, out_w) = same_padding(width, kernel, stride);
        let phase_width = width.div_ceil(stride);
        let taps = (0..kernel)
            .map(|kx| {
                // Output column x reads input column x·s + kx − left = s·(x + shift) + phase.
                let offset = kx as isize - left as isize;
                let phase = offset.rem_euclid(stride as isize) as usize;
                let shift = offset.div_euclid(stride as isize);
                let first = (-shift).clamp(0, out_w as isize) as usize;
                let end = (phase_width as isize - shift).clamp(first as isize, out_w as isize);
                ColumnTap {
                    phase,
                    first,
                    end: end as usize,
                    from: (first as isize + shift).max(0) as usize,
                }
            })
            .collect();
        Geometry {
            height,
            kernel,
            stride,
            top,
            out_h,
            out_w,
            phase_width,
            taps,
        }
    }

    /// One channel: `out = relu6(bias + Σ filter[ky][kx] · input[y·s + ky − top][x·s + kx − left])`,
    /// skipping the taps that fall on padding instead of materialising it.
    fn channel(&self, plane: &[f32], filter: &[f32], bias: f32, out: &mut [f32]) {
        let k = self.kernel;
        let phases: std::borrow::Cow<[f32]> = if self.stride == 1 {
            std::borrow::Cow::Borrowed(plane)
        } else {
            let width = plane.len() / self.height;
            let mut phases = vec![0f32; self.stride * self.height * self.phase_width];
            for (y, line) in plane.chunks_exact(width).enumerate() {
                for (x, &value) in line.iter().enumerate() {
                    let phase = x % self.stride;
                    phases[(phase * self.height + y) * self.phase_width + x / self.stride] = value;
                }
            }
            std::borrow::Cow::Owned(phases)
        };
        for (oy, row) in out.chunks_exact_mut(self.out_w).enumerate() {
            row.fill(bias);
            for ky in 0..k {
                let Some(iy) = (oy * self.stride + ky).checked_sub(self.top) else {
                    continue;
                };
                if iy >= self.height {
                    continue;
                }
                for (tap, weight) in self.taps.iter().zip(&filter[ky * k..(ky + 1) * k]) {
                    let line = (tap.phase * self.height + iy) * self.phase_width;
                    let inputs = &phases[line + tap.from..line + self.phase_width];
                    for (o, i) in row[tap.first..tap.end].iter_mut().zip(inputs) {
                        *o += weight * i;
                    }
                }
            }
            for v in row.iter_mut() {
                *v = v.clamp(0.0, 6.0);
            }
        }
    }
}

/// Adds a per-channel bias to a (channels, …) map in place, then optionally applies ReLU6 or
/// adds a residual: what follows every convolution once batch norm is folded, in one pass over
/// memory the convolution just wrote, instead of candle's broadcast add, clamp (two passes) and
/// add, each allocating a new map. These passes took a third of the time before.
struct ChannelBias {
    bias: Vec<f32>,
    relu6: bool,
}

impl ChannelBias {
    fn apply(&self, values: &mut [f32], residual: Option<&[f32]>) {
        let per_channel = values.len() / self.bias.len().max(1);
        for (c, (channel, &bias)) in values
            .chunks_exact_mut(per_channel)
            .zip(&self.bias)
            .enumerate()
        {
            for v in channel.iter_mut() {
                *v += bias;
            }
            if self.relu6 {
                for v in channel.iter_mut() {
                    *v = v.clamp(0.0, 6.0);
                }
            }
            if let Some(residual) = residual {
                let skip = &residual[c * per_channel..(c + 1) * per_channel];
                for (v, r) in channel.iter_mut().zip(skip) {
                    *v += r;
                }
            }
        }
    }

    fn values<'a>(
        &self,
        storage: &'a mut CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<&'a mut [f32]> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("a channel bias needs a contiguous map");
        };
        if layout.dims().first() != Some(&self.bias.len()) || (end - start) % self.bias.len() != 0 {
            bail!(
                "a bias of {} channels on a map of shape {:?}",
                self.bias.len(),
                layout.dims()
            );
        }
        match storage {
            CpuStorage::F32(values) => Ok(&mut values[start..end]),
            _ => bail!("a channel bias needs f32 values"),
        }
    }
}

impl InplaceOp1 for ChannelBias {
    fn name(&self) -> &'static str {
        "channel-bias"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let values = self.values(storage, layout)?;
        self.apply(values, None);
        Ok(())
    }
}

/// With a residual: `map += bias; map += residual`.
impl InplaceOp2 for ChannelBias {
    fn name(&self) -> &'static str {
        "channel-bias-residual"
    }

    fn cpu_fwd(
        &self,
        storage: &mut CpuStorage,
        layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
    ) -> candle_core::Result<()> {
        let Some((start, end)) = residual_layout.contiguous_offsets() else {
            bail!("a residual needs a contiguous map");
        };
        if residual_layout.shape().elem_count() != layout.shape().elem_count() {
            bail!(
                "a residual of shape {:?} on a map of shape {:?}",
                residual_layout.dims(),
                layout.dims()
            );
        }
        let residual = &residual.as_slice::<f32>()?[start..end];
        let values = self.values(storage, layout)?;
        self.apply(values, Some(residual));
        Ok(())
    }
}

/// An inverted-residual block: expand (1×1, ReLU6), depthwise (k×k, ReLU6), project (1×1,
/// linear), plus the input when the shape is unchanged.
struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let expanded = match &self.expand {
            Some(expand) => expand.forward(x, None)?,
            None => x.clone(),
        };
        let filtered = expanded.apply_op1_no_bwd(&self.depthwise)?;
        self.project.forward(&filtered, self.residual.then_some(x))
    }
}

/// EfficientNet-Lite0 with its batch norms folded.
struct Network {
    /// (32, 3, 3, 3).
    stem_weight: Tensor,
    stem_bias: ChannelBias,
    blocks: Vec<Block>,
    head: Pointwise,
    /// (1000, 1280).
    fc_weight: Tensor,
    /// (1000,).
    fc_bias: Tensor,
}

impl Network {
    fn load(weights: &Weights) -> Result<Network, VisionError> {
        let (stem_weight, stem_bias) =
            weights.conv_bn("_conv_stem", "_bn0", &[STEM_CHANNELS, 3, 3, 3])?;
        let stem_bias = ChannelBias {
            bias: stem_bias.to_vec1().map_err(model_error("_bn0"))?,
            relu6: true,
        };
        let mut blocks = Vec::new();
        for stage in &STAGES {
            for repeat in 0..stage.repeats {
                let (input, stride) = if repeat == 0 {
                    (stage.input, stage.stride)
                } else {
                    (stage.output, 1)
                };
                let prefix = format!("_blocks.{}", blocks.len());
                let hidden = input * stage.expand;
                let expand = if stage.expand == 1 {
                    None
                } else {
                    Some(Pointwise::load(
                        weights,
                        &format!("{prefix}._expand_conv"),
                        &format!("{prefix}._bn0"),
                        input,
                        hidden,
                        true,
                    )?)
                };
                blocks.push(Block {
                    expand,
                    depthwise: Depthwise::load(weights, &prefix, hidden, stage.kernel, stride)?,
                    project: Pointwise::load(
                        weights,
                        &format!("{prefix}._project_conv"),
                        &format!("{prefix}._bn2"),
                        hidden,
                        stage.output,
                        false,
                    )?,
                    residual: stride == 1 && input == stage.output,
                });
            }
        }
        let last = STAGES[STAGES.len() - 1].output;
        Ok(Network {
            stem_weight,
            stem_bias,
            blocks,
            head: Pointwise::load(weights, "_conv_head", "_bn1", last, HEAD_CHANNELS, true)?,
            fc_weight: weights.get("_fc.weight", &[CLASSES, HEAD_CHANNELS])?,
            fc_bias: weights.get("_fc.bias", &[CLASSES])?,
        })
    }

    /// The 1,000 class scores for a (1, 3, H, W) input.
    fn forward(&self, input: &Tensor) -> candle_core::Result<Vec<f32>> {
        let (_, _, height, width) = input.dims4()?;
        let (top, bottom, _) = same_padding(height, 3, 2);
        let (left, right, _) = same_padding(width, 3, 2);
        // candle pads symmetrically only, so the stem's padding is explicit and its own is 0.
        let padded = input
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let mut x = padded.conv2d(&self.stem_weight, 0, 2, 1, 1)?.squeeze(0)?;
        x.inplace_op1(&self.stem_bias)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let features = self
            .head
            .forward(&x, None)?
            .flatten_from(1)?
            .mean_keepdim(1)?;
        let logits = (self.fc_weight.matmul(&features)?.squeeze(1)? + &self.fc_bias)?;
        logits.to_vec1()
    }
}

/// EfficientNet-Lite0 and its class names, loaded once, with the threads it runs on.
pub struct Classifier {
    network: Network,
    names: Vec<String>,
    id: String,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("id", &self.id)
            .field("threads", &self.threads())
            .finish()
    }
}

impl Classifier {
    /// Loads the model from a directory holding [`MODEL_FILE`] and [`NAMES_FILE`], or from a
    /// `.safetensors` file with [`NAMES_FILE`] beside it, to run on `threads` threads.
    pub fn load(path: &Path, threads: usize) -> Result<Classifier, VisionError> {
        let weights_path = if path.is_dir() {
            path.join(MODEL_FILE)
        } else {
            path.to_path_buf()
        };
        if !weights_path.is_file() {
            return Err(VisionError::Model(format!(
                "{} not found",
                weights_path.display()
            )));
        }
        let names_path = weights_path
            .parent()
            .map_or_else(|| PathBuf::from(NAMES_FILE), |dir| dir.join(NAMES_FILE));
        let names = read_names(&names_path)?;
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|e| VisionError::Model(format!("reading {}: {e}", weights_path.display())))?;
        let network = Network::load(&Weights(tensors))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("vision-{i}"))
            .build()
            .map_err(|e| VisionError::Model(format!("starting the vision threads: {e}")))?;
        let id = weights_path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vision".to_string());
        Ok(Classifier {
            network,
            names,
            id,
            pool,
        })
    }

    /// The model's id: the weights' file name without `.safetensors` (`efficientnet-lite0`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.names.len()
    }

    /// The threads classification runs on.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Decodes an image and names the [`TOP_K`] likeliest classes. Blocks for the whole
    /// computation (tens of milliseconds at 224×224): call it off an async executor.
    pub fn classify(&self, bytes: &[u8]) -> Result<Classification, VisionError> {
        let (picture, logits) = self.run(bytes)?;
        Ok(Classification {
            labels: top_labels(&logits, &self.names, TOP_K),
            width: picture.image.width(),
            height: picture.image.height(),
            format: picture.format,
        })
    }

    /// The 1,000 raw class scores (logits, before softmax) for an image: what the reference
    /// values in `shared/models/README.md` are checked against.
    pub fn logits(&self, bytes: &[u8]) -> Result<Vec<f32>, VisionError> {
        self.run(bytes).map(|(_, logits)| logits)
    }

    fn run(&self, bytes: &[u8]) -> Result<(Picture, Vec<f32>), VisionError> {
        self.pool.install(|| {
            let picture = decode(bytes)?;
            let input = input_tensor(&picture.image).map_err(inference_error)?;
            let logits = self.network.forward(&input).map_err(inference_error)?;
            Ok((picture, logits))
        })
    }
}

fn read_names(path: &Path) -> Result<Vec<String>, VisionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| VisionError::Model(format!("reading {}: {e}", path.display())))?;
    let names: Vec<String> = serde_json::from_str(&text).map_err(|e| {
        VisionError::Model(format!(
            "{} is not a JSON list of names: {e}",
            path.display()
        ))
    })?;
    if names.len() != CLASSES {
        return Err(VisionError::Model(format!(
            "{} has {} names, expected {CLASSES}",
            path.display(),
            names.len()
        )));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .expect("encoding a PNG");
        bytes
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_after_for_stride_two_like_tensorflow() {
        assert_eq!(same_padding(224, 3, 2), (0, 1, 112));
        assert_eq!(same_padding(56, 5, 2), (1, 2, 28));
        assert_eq!(same_padding(14, 3, 1), (1, 1, 14));
        assert_eq!(same_padding(14, 5, 1), (2, 2, 14));
        // Odd sizes need no padding before for stride 2 and 3×3.
        assert_eq!(same_padding(7, 3, 2), (1, 1, 4));
    }

    /// The same convolution through candle's grouped `conv2d` on an explicitly padded input.
    fn reference_depthwise(
        input: &Tensor,
        op: &Depthwise,
        channels: usize,
    ) -> candle_core::Result<Tensor> {
        let (_, height, width) = input.dims3()?;
        let (top, bottom, _) = same_padding(height, op.kernel, op.stride);
        let (left, right, _) = same_padding(width, op.kernel, op.stride);
        let k = op.kernel;
        let weight = Tensor::from_vec(op.weight.clone(), (channels, 1, k, k), &Device::Cpu)?;
        let bias = Tensor::from_vec(op.bias.clone(), (channels, 1, 1), &Device::Cpu)?;
        let y = input
            .pad_with_zeros(1, top, bottom)?
            .pad_with_zeros(2, left, right)?
            .unsqueeze(0)?
            .conv2d(&weight, 0, op.stride, 1, channels)?
            .squeeze(0)?
            .broadcast_add(&bias)?;
        y.clamp(0f32, 6f32)
    }

    #[test]
    fn the_depthwise_kernel_matches_candles_grouped_convolution_with_same_padding() {
        let channels = 6;
        let (mut zeros, mut sixes) = (0, 0);
        for (kernel, stride, height, width) in [
            (3, 1, 9, 7),
            (3, 2, 9, 8),
            (5, 1, 8, 8),
            (5, 2, 11, 10),
            (3, 2, 2, 3),
        ] {
            let count = channels * height * width;
            // Small values around zero, so ReLU6 clips some outputs at both ends.
            let values: Vec<f32> = (0..count)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 4.0)
                .collect();
            let input =
                Tensor::from_vec(values, (channels, height, width), &Device::Cpu).expect("input");
            let op = Depthwise {
                weight: (0..channels * kernel * kernel)
                    .map(|i| ((i * 13 % 17) as f32 - 8.0) / 10.0)
                    .collect(),
                bias: (0..channels).map(|c| c as f32 - 2.0).collect(),
                kernel,
                stride,
            };
            let ours = input.apply_op1_no_bwd(&op).expect("depthwise");
            let theirs = reference_depthwise(&input, &op, channels).expect("reference");
            assert_eq!(ours.dims(), theirs.dims(), "k{kernel} s{stride}");
            let ours: Vec<f32> = ours.flatten_all().and_then(|t| t.to_vec1()).expect("ours");
            let theirs: Vec<f32> = theirs
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .expect("theirs");
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((a - b).abs() < 1e-4, "k{kernel} s{stride}: {a} vs {b}");
            }
            zeros += ours.iter().filter(|&&v| v == 0.0).count();
            sixes += ours.iter().filter(|&&v| v == 6.0).count();
        }
        assert!(
            zeros > 0 && sixes > 0,
            "ReLU6 clipped both ways: {zeros}, {sixes}"
        );
    }

    #[test]
    fn the_input_is_channels_first_and_normalised_with_the_imagenet_mean_and_std() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            INPUT_SIZE,
            INPUT_SIZE,
            image::Rgb([255, 0, 128]),
        ));
        let input = input_tensor(&image).expect("input");
        assert_eq!(input.dims(), &[1, 3, 224, 224]);
        let first_of_each_plane: Vec<f32> = (0..3)
            .map(|c| {
                input
                    .get(0)
                    .and_then(|t| t.get(c))
                    .and_then(|t| t.get(100))
                    .and_then(|t| t.get(100))
                    .and_then(|t| t.to_scalar())
                    .expect("a value")
            })
            .collect();
        let expected = [
            (1.0 - MEAN[0]) / STD[0],
            (0.0 - MEAN[1]) / STD[1],
            (128.0 / 255.0 - MEAN[2]) / STD[2],
        ];
        for (got, want) in first_of_each_plane.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn a_larger_image_is_resized_to_the_input_size_averaging_what_it_shrinks() {
        // One white column in three, shrunk 3×: averaging gives a third of white everywhere,
        // where bilinear sampling (or nearest) would land on the middle, black, column.
        let stripes = image::RgbImage::from_fn(INPUT_SIZE * 3, INPUT_SIZE * 3, |x, _| {
            image::Rgb(if x % 3 == 0 { [255; 3] } else { [0; 3] })
        });
        let input = input_tensor(&DynamicImage::ImageRgb8(stripes)).expect("input");
        assert_eq!(input.dims(), &[1, 3, 224, 224]);
        let red: f32 = input
            .get(0)
            .and_then(|t| t.get(0))
            .and_then(|t| t.get(112))
            .and_then(|t| t.get(112))
            .and_then(|t| t.to_scalar())
            .expect("a value");
        let grey = red * STD[0] + MEAN[0];
        assert!((grey - 1.0 / 3.0).abs() < 0.02, "{grey}");
    }

    #[test]
    fn softmax_top_labels_are_sorted_named_and_sum_to_at_most_one() {
        let names: Vec<String> = (0..8).map(|i| format!("class {i}")).collect();
        let logits = [0.0, 3.0, -1.0, 3.0, 1.0, 0.5, 2.0, -4.0];
        let labels = top_labels(&logits, &names, 5);
        let indices: Vec<u32> = labels.iter().map(|l| l.index).collect();
        assert_eq!(indices, vec![1, 3, 6, 4, 5], "ties keep index order");
        assert_eq!(labels[0].name, "class 1");
        assert_eq!(labels[0].probability, labels[1].probability);
        let total: f32 = labels.iter().map(|l| l.probability).sum();
        assert!(total < 1.0 && total > 0.9, "{total}");
        let all: f32 = top_labels(&logits, &names, 8)
            .iter()
            .map(|l| l.probability)
            .sum();
        assert!((all - 1.0).abs() < 1e-6, "{all}");
    }

    #[test]
    fn random_bytes_truncated_pngs_and_other_formats_are_invalid_images_not_panics() {
        let whole = png(DynamicImage::ImageRgb8(image::RgbImage::from_fn(
            64,
            48,
            |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 7]),
        )));
        assert!(decode(&whole).is_ok());
        for cut in [8, 40, whole.len() / 2, whole.len() - 13] {
            assert!(
                matches!(decode(&whole[..cut]), Err(VisionError::InvalidImage(_))),
                "cut at {cut}"
            );
        }
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(matches!(decode(&noise), Err(VisionError::InvalidImage(_))));
        assert!(matches!(decode(&[]), Err(VisionError::InvalidImage(_))));
        // A BMP header: a format `image` knows by its magic bytes but this build does not decode.
        let bmp = b"BM\x3e\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0";
        match decode(bmp) {
            Err(VisionError::InvalidImage(message)) => {
                assert!(message.contains("PNG, JPEG, WebP or GIF"), "{message}")
            }
            other => panic!("expected invalid_image, got {:?}", other.map(|p| p.format)),
        }
    }

    #[test]
    fn png_jpeg_webp_and_gif_decode_with_their_format_name_and_size() {
        let picture = DynamicImage::ImageRgb8(image::RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([x as u8 * 6, y as u8 * 8, 90])
        }));
        for (format, name) in [
            (ImageFormat::Png, "png"),
            (ImageFormat::Jpeg, "jpeg"),
            (ImageFormat::WebP, "webp"),
            (ImageFormat::Gif, "gif"),
        ] {
            let mut bytes = Vec::new();
            picture
                .write_to(&mut Cursor::new(&mut bytes), format)
                .expect("encoding");
            let decoded = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(decoded.format.as_str(), name);
            assert_eq!(
                (decoded.image.width(), decoded.image.height()),
                (40, 30),
                "{name}"
            );
        }
    }

    #[test]
    fn an_image_claiming_more_pixels_than_the_cap_is_refused_before_it_is_decoded() {
        // 64 million black pixels compress to well under a megabyte.
        let huge = png(DynamicImage::ImageLuma8(image::GrayImage::new(8000, 8000)));
        assert!(huge.len() < 1 << 20, "{} bytes", huge.len());
        assert_eq!(
            decode(&huge).err(),
            Some(VisionError::ImageTooLarge {
                width: 8000,
                height: 8000
            })
        );
    }

    #[test]
    fn a_missing_model_directory_is_a_model_error() {
        let missing = Classifier::load(Path::new("/nonexistent/vision"), 1);
        assert!(matches!(missing, Err(VisionError::Model(m)) if m.contains("not found")));
    }
}
