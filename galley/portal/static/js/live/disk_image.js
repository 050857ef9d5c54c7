// What a local disk image file is, read from its first and last bytes, and the fixed-VHD footer
// a raw image needs to become an Azure page blob (layout: galley/content/vhd.py).

export const SECTOR = 512;
const VHD_EPOCH = 946684800; // 2000-01-01T00:00:00Z
const QCOW2_MAGIC = [0x51, 0x46, 0x49, 0xfb]; // "QFI\xfb"
const COOKIE = "conectix";

function ascii(bytes, start, length) {
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

// {format, virtualSize, blobSize, pageUpload, footer?}: `pageUpload` says whether the file can go
// to a Write SAS as pages (raw and fixed VHD); dynamic VHD and qcow2 take Galley's PUT …/upload.
export async function inspect(file) {
  if (file.size < SECTOR) throw new Error(`${file.name} is ${file.size} bytes: too small to be a disk image.`);
  const head = new Uint8Array(await file.slice(0, SECTOR).arrayBuffer());
  const tail = new Uint8Array(await file.slice(file.size - SECTOR).arrayBuffer());
  const tailView = new DataView(tail.buffer);
  if (QCOW2_MAGIC.every((byte, i) => head[i] === byte)) {
    const size = Number(new DataView(head.buffer).getBigUint64(24));
    return { format: "qcow2", virtualSize: size, blobSize: size + SECTOR, pageUpload: false };
  }
  if (ascii(tail, 0, 8) === COOKIE) {
    const diskType = tailView.getUint32(60);
    const size = Number(tailView.getBigUint64(48));
    if (diskType === 2) {
      if (file.size % SECTOR) throw new Error(`${file.name} is not a whole number of 512-byte sectors.`);
      return { format: "vhd-fixed", virtualSize: file.size - SECTOR, blobSize: file.size, pageUpload: true };
    }
    if (diskType === 3) return { format: "vhd-dynamic", virtualSize: size, blobSize: size + SECTOR, pageUpload: false };
    throw new Error(`${file.name} is a VHD of disk type ${diskType}; only fixed and dynamic VHDs can be uploaded.`);
  }
  if (file.size % SECTOR) {
    throw new Error(`${file.name} (${file.size} bytes) is not a whole number of 512-byte sectors, ` +
      "so it cannot be a raw disk. Pad it (truncate -s) or convert it (qemu-img convert -O vpc -o subformat=fixed).");
  }
  return { format: "raw", virtualSize: file.size, blobSize: file.size + SECTOR, pageUpload: true,
           footer: vhdFooter(file.size) };
}

// (cylinders, heads, sectors per track) as the VHD specification computes them.
export function chsGeometry(virtualSize) {
  let total = Math.min(Math.floor(virtualSize / SECTOR), 65535 * 16 * 255);
  let spt, heads, cylHeads;
  if (total >= 65535 * 16 * 63) {
    spt = 255; heads = 16; cylHeads = Math.floor(total / spt);
  } else {
    spt = 17; cylHeads = Math.floor(total / spt);
    heads = Math.max(Math.floor((cylHeads + 1023) / 1024), 4);
    if (cylHeads >= heads * 1024 || heads > 16) { spt = 31; heads = 16; cylHeads = Math.floor(total / spt); }
    if (cylHeads >= heads * 1024) { spt = 63; heads = 16; cylHeads = Math.floor(total / spt); }
  }
  return [Math.floor(cylHeads / heads), heads, spt];
}

// The 512-byte footer of a fixed VHD holding `virtualSize` bytes (creator "win ", as Galley writes
// it, so that qemu reads the size from `current size`).
export function vhdFooter(virtualSize) {
  const bytes = new Uint8Array(SECTOR);
  const view = new DataView(bytes.buffer);
  const put = (at, text) => { for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i); };
  put(0, COOKIE);
  view.setUint32(8, 2);
  view.setUint32(12, 0x00010000);
  view.setBigUint64(16, 0xffffffffffffffffn);
  view.setUint32(24, Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH));
  put(28, "win ");
  view.setUint32(32, 0x000a0000);
  put(36, "Wi2k");
  view.setBigUint64(40, BigInt(virtualSize));
  view.setBigUint64(48, BigInt(virtualSize));
  const [cylinders, heads, spt] = chsGeometry(virtualSize);
  view.setUint16(56, cylinders);
  view.setUint8(58, heads);
  view.setUint8(59, spt);
  view.setUint32(60, 2);
  crypto.getRandomValues(bytes.subarray(68, 84));
  let sum = 0;
  for (const byte of bytes) sum += byte;
  view.setUint32(64, ~sum >>> 0);
  return bytes;
}
