// The OTA Manager's main window: sign-in, the first-time wizard, image type folders, the
// left-hand filters, the image list and tag search. Uploads: upload.js; pushes: deploy.js.

import { $, api, ApiError, account, el, everything, kib, local, ota, session, show, signIn,
  whenSignedOut } from "./api.js";
import { deployPanel, openHistory } from "./deploy.js";
import { openUpload } from "./upload.js";

// What the page knows of the partner; refreshed from the API, never edited in place.
const lab = {
  types: [],
  deviceTypes: [],
  devices: [],
  filter: { type: null, deviceType: null, tags: "" },
  refresh: async () => {
    await refreshNav();
    await refreshImages();
  },
};

const VIEWS = ["signin-view", "first-time-view", "main-view"];

function view(name) {
  for (const id of VIEWS) $(id).hidden = id !== name;
  const s = session.get();
  $("sign-out").hidden = name === "signin-view";
  $("who").textContent = s && name !== "signin-view" ? `partner ${s.partnerId}` : "";
}

function showSignIn(message = "") {
  view("signin-view");
  $("signin-error").textContent = message;
  $("signin-user").focus();
}

async function enter() {
  lab.types = await api("GET", ota("/types"));
  if (lab.types.length === 0) {
    view("first-time-view");
    renderFirstTypes([]);
    $("first-type-name").focus();
    return;
  }
  view("main-view");
  await lab.refresh();
}

// -- first-time wizard ---------------------------------------------------------------------------

function renderFirstTypes(created) {
  $("first-types").replaceChildren(
    ...created.map((t) => el("li", { dataset: { type: t.type } }, `${t.name} (type ${t.type})`)),
  );
  $("first-done").disabled = created.length === 0;
}

const firstCreated = [];

async function addFirstType(event) {
  event.preventDefault();
  try {
    const made = await api("POST", ota("/types"), {
      json: { name: $("first-type-name").value.trim(), description: $("first-type-description").value.trim() },
    });
    firstCreated.push(made);
    renderFirstTypes(firstCreated);
    $("first-type-form").reset();
    show($("first-type-error"), null);
  } catch (error) {
    show($("first-type-error"), error);
  }
  $("first-type-name").focus();
}

// -- the left-hand pane --------------------------------------------------------------------------

async function refreshNav() {
  [lab.types, lab.deviceTypes, lab.devices] = await Promise.all([
    api("GET", ota("/types")),
    everything(local("/deviceTypes")),
    everything(account("/devices")),
  ]);
  const f = lab.filter;
  if (f.type !== null && !lab.types.some((t) => t.type === f.type)) f.type = null;
  if (f.deviceType !== null && !lab.deviceTypes.some((d) => d.id === f.deviceType)) f.deviceType = null;

  const choose = (key, value) => () => {
    lab.filter[key] = lab.filter[key] === value ? null : value;
    refreshNav().then(refreshImages);
  };
  $("type-folders").replaceChildren(
    el("li", { class: f.type === null ? "folder all selected" : "folder all" },
      el("button", { class: "link", onclick: choose("type", null) }, "ALL IMAGE TYPES")),
    ...lab.types.map((t) => folder(t, f.type === t.type, choose("type", t.type))),
  );
  $("device-type-filters").replaceChildren(
    el("li", { class: f.deviceType === null ? "selected" : "" },
      el("button", { class: "link", onclick: choose("deviceType", null) }, "ALL DEVICE TYPES")),
    ...lab.deviceTypes.map((d) => el("li", { class: f.deviceType === d.id ? "selected" : "", dataset: { deviceType: d.id } },
      el("button", { class: "link", onclick: choose("deviceType", d.id) }, d.name || d.id))),
  );
  $("device-list").replaceChildren(
    ...lab.devices.map((d) => el("li", { dataset: { deviceId: d.deviceId } },
      el("button", { class: "link", title: "deployment history", onclick: () => openHistory(d.deviceId) }, d.deviceId),
      el("span", { class: "dim" }, ` ${d.deviceTypeId}`))),
  );
  if (lab.devices.length === 0) $("device-list").append(el("li", { class: "dim" }, "none registered"));
}

function folder(type, selected, onchoose) {
  const node = el("li", { class: selected ? "folder selected" : "folder", dataset: { type: type.type } },
    el("button", { class: "edit", title: "EDIT IMAGE TYPE", "aria-label": `edit image type ${type.name}`,
      onclick: () => openTypeDialog(type) }, "✎"),
    el("button", { class: "link name", onclick: onchoose }, type.name),
    el("span", { class: "dim" }, ` ${type.type}`));
  // A file dropped on a folder starts the upload wizard with both chosen.
  node.addEventListener("dragover", (event) => event.preventDefault());
  node.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) openUpload(lab, { type: type.type, file });
  });
  return node;
}

// -- images --------------------------------------------------------------------------------------

let asked = 0; // the newest listing wins: an older answer arriving late is dropped

async function refreshImages() {
  const mine = ++asked;
  const { type, deviceType } = lab.filter;
  const tags = lab.filter.tags.split(/[\s,]+/).filter(Boolean).join(",");
  let path = ota("/pool");
  if (deviceType !== null) {
    const dt = encodeURIComponent(deviceType);
    path = ota(type !== null ? `/deviceTypes/${dt}/firmwareImages/types/${type}` : `/deviceTypes/${dt}/firmwareImages`);
  } else if (type !== null) {
    path = ota(`/pool/types/${type}`);
  }
  let images;
  try {
    images = await everything(path, { tags, sort: "updatedTimestamp,desc" });
  } catch (error) {
    if (mine === asked) show($("list-error"), error);
    return;
  }
  if (mine !== asked) return;
  show($("list-error"), null);
  $("images").replaceChildren(...images.map(imageRow));
  $("images-empty").hidden = images.length > 0;
  const parts = [`${images.length} image${images.length === 1 ? "" : "s"}`];
  const t = lab.types.find((x) => x.type === type);
  if (t) parts.push(`image type ${t.name} (${t.type})`);
  if (deviceType !== null) parts.push(`device type ${deviceType}`);
  if (tags) parts.push(`tags ${tags}`);
  $("filter-summary").textContent = parts.join(" · ");
}

function imageRow(image) {
  const type = lab.types.find((t) => t.type === image.type);
  const partner = session.get().partnerId;
  const deviceTypes = image.associations ? image.associations[partner] || [] : [image.deviceTypeId];
  const row = el("li", { class: "image", dataset: { imageId: image.id, versionNumber: image.versionNumber } });
  const deploy = el("button", { class: "deploy" }, "DEPLOY");
  deploy.addEventListener("click", () => {
    const open = row.querySelector(".deploy-panel");
    if (open) open.remove();
    else row.append(deployPanel(image, deviceTypes, lab));
  });
  row.append(el("div", { class: "image-head" },
    el("div", {},
      el("strong", { class: "image-name" }, image.name), " ",
      el("span", { class: "image-version" }, image.version),
      el("div", { class: "dim" },
        `${type ? type.name : "type"} (${image.type}) · #${image.versionNumber} · ${kib(image.size || 0)} · sha256 ${(image.sha256 || "").slice(0, 12)}`),
      el("div", { class: "image-description" }, image.description || ""),
      el("ul", { class: "plain chips" }, ...(image.tags || []).map((tag) => el("li", { class: "chip" }, tag))),
      el("div", { class: "dim image-device-types" },
        deviceTypes.length ? `device types: ${deviceTypes.join(", ")}` : "no device type associated")),
    deploy));
  return row;
}

// -- add and edit an image type ------------------------------------------------------------------

let editing = null;

function openTypeDialog(type = null) {
  editing = type;
  $("type-dialog-title").textContent = type ? "Edit Firmware Image Type" : "Add Firmware Image Type";
  $("type-dialog-id").textContent = type
    ? `type ${type.type}, id ${type.id}: these never change; to change the category, add a new type`
    : "";
  $("type-name").value = type ? type.name : "";
  $("type-description").value = type ? type.description || "" : "";
  $("type-save").textContent = type ? "SAVE" : "ADD";
  show($("type-error"), null);
  $("type-dialog").showModal();
}

async function saveType(event) {
  event.preventDefault();
  const json = { name: $("type-name").value.trim(), description: $("type-description").value.trim() };
  try {
    if (editing) await api("PUT", ota(`/types/${editing.type}`), { json });
    else await api("POST", ota("/types"), { json });
  } catch (error) {
    show($("type-error"), error);
    return;
  }
  $("type-dialog").close();
  await lab.refresh();
}

// -- wiring --------------------------------------------------------------------------------------

let typing = 0;

function wire() {
  whenSignedOut(showSignIn);
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn($("signin-user").value, $("signin-password").value);
    } catch (error) {
      show($("signin-error"), error instanceof ApiError ? error.message : error);
      return;
    }
    $("signin-form").reset();
    await enter();
  });
  $("sign-out").addEventListener("click", () => {
    session.clear();
    showSignIn();
  });
  $("first-type-form").addEventListener("submit", addFirstType);
  $("first-done").addEventListener("click", enter);
  $("add-type").addEventListener("click", () => openTypeDialog());
  $("type-form").addEventListener("submit", saveType);
  $("type-cancel").addEventListener("click", () => $("type-dialog").close());
  $("upload-new").addEventListener("click", () => openUpload(lab));
  $("tag-search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    lab.filter.tags = $("tag-search").value;
    refreshImages();
  });
  $("tag-search").addEventListener("input", () => {
    const mine = ++typing;
    setTimeout(() => {
      if (mine !== typing) return;
      lab.filter.tags = $("tag-search").value;
      refreshImages();
    }, 250);
  });
}

// A refused call outside a form (a click on a folder, say) shows in the list's error line; a 401
// has already sent the user to the sign-in. Anything else is a bug and is left to surface.
window.addEventListener("unhandledrejection", (event) => {
  if (!(event.reason instanceof ApiError)) return;
  event.preventDefault();
  if (event.reason.status !== 401) show($("list-error"), event.reason);
});

wire();
if (session.live()) enter().catch((error) => showSignIn(String(error.message || error)));
else showSignIn();
