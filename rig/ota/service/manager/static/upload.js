// +UPLOAD NEW IMAGE: the three-step wizard (file and image type → information → device types),
// then stage the bytes (POST /binaries), keep them (moveToRepository) and create the image record
// (POST /pool) with its associations. The service's rules decide; the wizard shows what they say.

import { $, api, el, kib, ota, session, show } from "./api.js";

const NEXT = ["", "NEXT: ADD INFO FOR YOUR FIRMWARE", "NEXT: ASSOCIATE DEVICE TYPES", "DONE"];

let lab = null;
let wizard = null; // {step, type, file, tags}

function enables(deviceType, type) {
  const profile = deviceType.profile;
  return Boolean(profile && (profile.otaImageTypes || []).includes(type));
}

export function openUpload(theLab, preset = {}) {
  lab = theLab;
  wizard = { step: 1, type: preset.type ?? null, file: preset.file ?? null, tags: [] };
  for (const id of ["upload-name", "upload-description", "upload-version", "upload-tag", "upload-file"]) {
    $(id).value = "";
  }
  renderTags();
  go(1);
  $("upload-dialog").showModal();
}

function go(step) {
  wizard.step = step;
  for (const n of [1, 2, 3]) $(`upload-step-${n}`).hidden = n !== step;
  for (const item of $("upload-steps").children) {
    item.classList.toggle("current", Number(item.dataset.step) === step);
    item.classList.toggle("done", Number(item.dataset.step) < step);
  }
  $("upload-next").textContent = NEXT[step];
  $("upload-back").hidden = step === 1;
  show($("upload-error"), null);
  if (step === 1) renderFolders();
  if (step === 2 && !$("upload-name").value) $("upload-name").value = wizard.file.name.replace(/\.[^.]*$/, "");
  if (step === 3) renderDeviceTypes();
  refreshNext();
}

function refreshNext() {
  $("upload-next").disabled = wizard.step === 1 && !(wizard.type !== null && wizard.file);
}

// -- step 1: a file on an image type folder ------------------------------------------------------

function renderFolders() {
  $("upload-folders").replaceChildren(...lab.types.map((t) => {
    const node = el("li", { class: wizard.type === t.type ? "folder selected" : "folder", dataset: { type: t.type },
      tabindex: 0, role: "button", "aria-pressed": String(wizard.type === t.type) },
    el("span", { class: "name" }, t.name), el("span", { class: "dim" }, ` ${t.type}`));
    const choose = () => {
      wizard.type = t.type;
      renderFolders();
    };
    node.addEventListener("click", choose);
    node.addEventListener("keydown", (event) => event.key === "Enter" && choose());
    node.addEventListener("dragover", (event) => {
      event.preventDefault();
      node.classList.add("over");
    });
    node.addEventListener("dragleave", () => node.classList.remove("over"));
    node.addEventListener("drop", (event) => {
      event.preventDefault();
      const file = event.dataTransfer.files[0];
      if (file) wizard.file = file;
      choose();
    });
    return node;
  }));
  const type = lab.types.find((t) => t.type === wizard.type);
  $("upload-chosen").textContent = [
    type ? `image type: ${type.name} (${type.type})` : "no image type selected",
    wizard.file ? `file: ${wizard.file.name}, ${kib(wizard.file.size)}` : "no file chosen",
  ].join(" · ");
  const enabled = type && lab.deviceTypes.some((d) => enables(d, type.type));
  $("upload-type-note").textContent = type && !enabled
    ? `No published profile enables type ${type.type} yet; the service will refuse the upload (R4) until one does.`
    : "";
  refreshNext();
}

// -- step 2: name, description, version, tags ----------------------------------------------------

function renderTags() {
  $("upload-tags").replaceChildren(...wizard.tags.map((tag) => el("li", { class: "chip" }, tag, " ",
    el("button", { class: "link", "aria-label": `remove tag ${tag}`, onclick: () => {
      wizard.tags = wizard.tags.filter((t) => t !== tag);
      renderTags();
    } }, "×"))));
}

function addTag(event) {
  if (event.key !== "Enter") return;
  event.preventDefault();
  const tag = $("upload-tag").value.trim();
  if (tag && !wizard.tags.includes(tag)) wizard.tags.push(tag);
  $("upload-tag").value = "";
  renderTags();
}

function info() {
  return {
    name: $("upload-name").value.trim(),
    description: $("upload-description").value.trim(),
    version: $("upload-version").value.trim(),
  };
}

async function checkInfo() {
  const { name, description, version } = info();
  const missing = Object.entries({ name, description, version }).filter(([, v]) => !v).map(([k]) => k);
  if (missing.length) throw new Error(`Fill in ${missing.join(", ")}: an image needs a name, a description and a version (R5).`);
  const path = `/pool/types/${wizard.type}/names/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/exists`;
  const exists = await api("GET", ota(path));
  if (exists.value) throw new Error(`Type ${wizard.type} already has an image '${name}' version '${version}' (R5): change the name or the version.`);
}

// -- step 3: eligible device types, then upload --------------------------------------------------

function renderDeviceTypes() {
  const rows = lab.deviceTypes.map((d) => {
    const ok = enables(d, wizard.type);
    const why = d.profile ? `not eligible: its profile does not enable type ${wizard.type} (R6)` : "not eligible: no published profile (R6)";
    return el("li", { class: ok ? "" : "dim", dataset: { deviceType: d.id } },
      el("label", {}, el("input", { type: "checkbox", value: d.id, disabled: !ok }), ` ${d.name || d.id}`,
        ok ? "" : el("span", { class: "note" }, ` ${why}`)));
  });
  if (!lab.deviceTypes.some((d) => enables(d, wizard.type))) {
    rows.push(el("li", { class: "note" }, `No device type is eligible for type ${wizard.type} yet: publish a profile that enables it.`));
  }
  $("upload-device-types").replaceChildren(...rows);
}

async function upload() {
  const ticked = [...$("upload-device-types").querySelectorAll("input:checked")].map((box) => box.value);
  const sha = await api("POST", ota("/binaries"), { body: wizard.file, type: "application/octet-stream" });
  const kept = await api("POST", ota("/binaries/moveToRepository"), { json: { value: sha.value } });
  const json = { type: wizard.type, ...info(), url: kept.value, tags: wizard.tags };
  if (ticked.length) json.associations = { [session.get().partnerId]: ticked };
  return api("POST", ota("/pool"), { json });
}

async function next() {
  const button = $("upload-next");
  button.disabled = true;
  try {
    if (wizard.step === 1) go(2);
    else if (wizard.step === 2) {
      await checkInfo();
      go(3);
    } else {
      await upload();
      $("upload-dialog").close();
      await lab.refresh();
    }
  } catch (error) {
    show($("upload-error"), error);
  } finally {
    refreshNext();
    if (wizard.step !== 1) button.disabled = false;
  }
}

$("upload-next").addEventListener("click", next);
$("upload-back").addEventListener("click", () => go(wizard.step - 1));
$("upload-cancel").addEventListener("click", () => $("upload-dialog").close());
$("upload-tag").addEventListener("keydown", addTag);
$("upload-file").addEventListener("change", (event) => {
  wizard.file = event.target.files[0] || null;
  renderFolders();
});
