// DEPLOY → tick device ids → PUSH NOW, each device's deployment status below it, followed live;
// and a device's deployment history. States are DESIGN §4's (rig.ota.states).

import { $, api, el, everything, local, ota, show } from "./api.js";

// A deployment in one of these has its outcome (rig.ota.states.TERMINAL without INTERRUPTED,
// which the service offers again; tests/unit/ota/service/test_manager_page.py keeps them equal).
export const FINAL = ["SUCCEEDED", "DECLINED", "ABORTED_BY_MCU", "VERIFY_FAILED", "APPLY_FAILED",
  "TIMED_OUT", "CANCELED", "SUPERSEDED"];
const FOLLOW_MS = 300;

export function describe(d) {
  let text = d.state;
  if (d.state === "TIMED_OUT" && d.reason) text = `TIMED_OUT(${d.reason})`;
  else if (d.reason) text += `: ${d.reason}`;
  if (d.state === "TRANSFERRING" && d.total) text += ` ${d.bytes || 0}/${d.total} bytes`;
  if (d.attempt > 1) text += ` (attempt ${d.attempt})`;
  const last = (d.history || []).at(-1);
  if (!FINAL.includes(d.state) || d.state === "SUCCEEDED" || !last || !last.detail) return text;
  return `${text} (${last.detail})`;
}

function status(node, deployment) {
  node.textContent = describe(deployment);
  node.dataset.state = deployment.state;
  node.classList.toggle("failed", FINAL.includes(deployment.state) && deployment.state !== "SUCCEEDED");
  node.classList.toggle("succeeded", deployment.state === "SUCCEEDED");
}

// Follow one deployment until it has its outcome, or until its line leaves the page.
async function follow(id, node) {
  while (node.isConnected) {
    let d;
    try {
      d = await api("GET", local(`/deployments/${encodeURIComponent(id)}`));
    } catch (error) {
      show(node, error);
      return;
    }
    status(node, d);
    if (FINAL.includes(d.state)) return;
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
  }
}

export function deployPanel(image, deviceTypes, lab) {
  const devices = lab.devices.filter((d) => deviceTypes.includes(d.deviceTypeId));
  const push = el("button", { class: "push", disabled: true }, "PUSH NOW");
  const error = el("p", { class: "error", role: "alert" });
  const list = el("ul", { class: "plain devices" }, ...devices.map((d) => {
    const box = el("input", { type: "checkbox", value: d.deviceId,
      onchange: () => { push.disabled = !list.querySelector("input:checked"); } });
    const line = el("p", { class: "status" });
    latest(image, d.deviceId, line);
    return el("li", { class: "device", dataset: { deviceId: d.deviceId, deviceType: d.deviceTypeId } },
      el("label", {}, box, ` ${d.deviceId}`, el("span", { class: "dim" }, ` ${d.deviceTypeId}`)), line);
  }));
  push.addEventListener("click", async () => {
    show(error, null);
    for (const item of list.querySelectorAll("li.device")) {
      const box = item.querySelector("input");
      if (!box.checked) continue;
      const line = item.querySelector(".status");
      const dt = encodeURIComponent(item.dataset.deviceType);
      try {
        const d = await api("PUT", ota(`/deviceTypes/${dt}/firmwareImages/${image.id}/push`), { json: { value: box.value } });
        status(line, d);
        follow(d.id, line);
      } catch (failure) {
        line.classList.add("failed");
        show(line, failure);
      }
      box.checked = false;
    }
    push.disabled = true;
  });
  const none = devices.length ? null : el("p", { class: "dim" },
    deviceTypes.length ? `No registered device is of ${deviceTypes.join(", ")}.` : "Associate a device type with this image first.");
  return el("div", { class: "deploy-panel" }, list, none, el("div", { class: "buttons" }, push), error);
}

// The device's newest deployment of this image, if any, shown and followed.
async function latest(image, deviceId, line) {
  const found = await api("GET", local("/deployments"), {
    query: { deviceId, sort: "createdTimestamp,desc", size: 20 },
  }).catch(() => null);
  const mine = found && found.content.find((d) => d.imageId === image.id);
  if (!mine) return;
  status(line, mine);
  if (!FINAL.includes(mine.state)) follow(mine.id, line);
}

// -- history -------------------------------------------------------------------------------------

const when = (ms) => new Date(ms).toLocaleString();
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false }) + `.${String(ms % 1000).padStart(3, "0")}`;

// "name version" of each image the deployments name, looked up once each.
async function imageNames(deployments) {
  const names = new Map();
  for (const d of deployments) {
    const key = `${d.type}/${d.versionNumber}`;
    if (names.has(key)) continue;
    const image = await api("GET", ota(`/pool/types/${d.type}/versionNumbers/${encodeURIComponent(d.versionNumber)}`)).catch(() => null);
    names.set(key, image ? `${image.name} ${image.version}` : "");
  }
  return names;
}

export async function openHistory(deviceId) {
  $("history-device").textContent = deviceId;
  const body = $("history").tBodies[0];
  body.replaceChildren();
  show($("history-error"), null);
  $("history-dialog").showModal();
  let deployments;
  try {
    deployments = await everything(local("/deployments"), { deviceId, sort: "createdTimestamp,desc" });
  } catch (error) {
    show($("history-error"), error);
    return;
  }
  $("history-empty").hidden = deployments.length > 0;
  const names = await imageNames(deployments);
  body.replaceChildren(...deployments.map((d) => el("tr", { dataset: { deploymentId: d.id, state: d.state } },
    el("td", {}, when(d.createdTimestamp)),
    el("td", {}, names.get(`${d.type}/${d.versionNumber}`) || "", el("div", { class: "dim" }, `type ${d.type} #${d.versionNumber}`)),
    el("td", { class: "state" }, describe(d)),
    el("td", {}, String(d.attempt)),
    el("td", {}, el("ol", { class: "steps-list" }, ...(d.history || []).map((h) =>
      el("li", {}, el("span", { class: "clock" }, clock(h.timestamp)), ` ${h.state}${h.reason ? `(${h.reason})` : ""}`,
        h.detail ? el("div", { class: "dim detail" }, h.detail) : null)))))));
}

$("history-close").addEventListener("click", () => $("history-dialog").close());
