// The core pages: each registers its routes (and navigation links) here, in one place.
import { registerNav, registerRoute } from "../registry.js";
import { KINDS } from "./common.js";
import { renderHome } from "./home.js";
import { renderBrowse } from "./browse.js";
import { renderResource } from "./resource.js";
import { renderCreateGallery, renderCreateDefinition } from "./create.js";
import { renderCreateVersion } from "./create-version.js";
import { renderEdit } from "./edit.js";
import { renderPlatformImages } from "./platform-images.js";

registerRoute("#/", renderHome);
registerRoute("#/resource/*", (container, ctx, params) => renderResource(container, ctx, `/${params.rest}`));
registerRoute("#/browse/:kind", (container, ctx, params) => renderBrowse(container, ctx, params.kind));
registerRoute("#/create/gallery", (container, ctx) => renderCreateGallery(container, ctx, null));
registerRoute("#/create/gallery/*", (container, ctx, params) => renderCreateGallery(container, ctx, `/${params.rest}`));
registerRoute("#/create/definition/*", (container, ctx, params) => renderCreateDefinition(container, ctx, `/${params.rest}`));
registerRoute("#/create/version/*", (container, ctx, params) => renderCreateVersion(container, ctx, `/${params.rest}`));
registerRoute("#/edit/*", (container, ctx, params) => renderEdit(container, ctx, `/${params.rest}`));
registerRoute("#/platform-images", renderPlatformImages);

registerNav("Home", "#/");
for (const [key, kind] of Object.entries(KINDS)) registerNav(kind.label, `#/browse/${key}`);
registerNav("Platform images", "#/platform-images");
