"""Virtual machines: QEMU processes, copy-on-write disks, provisioning seed, guest channel, serial log."""
