// The revision selector of the files page: switch revisions as soon as one is picked (the Go
// button does the same without script). A file, not an inline handler: pages forbid inline script.
document.querySelectorAll("form.revs select").forEach((s) => s.addEventListener("change", () => s.form.submit()));
