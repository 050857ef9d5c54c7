// LIVE's pages: browser upload, image template runs, VM controls, storage usage.
// app.js imports this module once; each page registers itself with the registry.
import { registerPanel, registerRoute, registerNav } from "../registry.js";
import { renderUpload } from "./upload.js";
import { renderBuilds } from "./builds.js";
import { renderVm } from "./vms.js";
import { renderUsage } from "./usage.js";

registerRoute("#/upload", renderUpload);
registerNav("Upload a disk", "#/upload");
registerRoute("#/usage", renderUsage);
registerNav("Storage usage", "#/usage");
registerPanel("Microsoft.VirtualMachineImages/imageTemplates", { title: "Runs", render: renderBuilds });
registerPanel("Microsoft.Compute/virtualMachines", { title: "Operations", render: renderVm });
