"""The builder layer: turning templates into real, bootable disk images.

Building blocks, each a plain module with no HTTP and no database:

- `debian`: build a bootable Debian raw disk image (debootstrap → configure → generalize →
  ext4 without mounting → partition → GRUB), caching the debootstrap result.
- `boot`: boot a disk image under QEMU and run a validation script inside it, reading the
  result from the serial console (the image is never modified: `snapshot=on`).
"""
