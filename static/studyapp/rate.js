// The rating page. Keys 1 / 2 / 0 answer the active question, then focus and scroll to the next one;
// Enter submits once all three are answered; P (or a click on a photo) enlarges the subject's photos.
// The answer is posted to the JSON endpoint, which replies with the next pair, swapped in place. If
// that fails in any way the form is posted the plain way, which is safe to repeat, and the server's page
// explains. Times from both images shown to submit; preloads the next pair's images.
(function () {
  "use strict";
  var root = document.getElementById("rate");
  var form = document.getElementById("answer-form");
  if (!root || !form) return;
  var questions = Array.prototype.slice.call(form.querySelectorAll(".question"));
  var submitButton = document.getElementById("submit-answer");
  var responseField = form.elements.namedItem("response_ms");
  var assignmentField = form.elements.namedItem("assignment");
  var images = [document.getElementById("image-1"), document.getElementById("image-2")];
  var references = document.getElementById("references");
  var viewer = document.getElementById("viewer");
  var viewerImage = document.getElementById("viewer-image");
  var active = 0;
  var shownAt = null;
  var sent = false;
  var shownPhoto = 0;
  var pairsShown = 0;

  function isAnswered(question) { return question.querySelector("input:checked") !== null; }
  function allAnswered() { return questions.every(isAnswered); }

  function firstUnansweredAfter(index) {
    for (var step = 1; step <= questions.length; step++) {
      var candidate = (index + step) % questions.length;
      if (!isAnswered(questions[candidate])) return candidate;
    }
    return -1;
  }

  function bringIntoView(element) {
    element.focus({ preventScroll: true });
    element.scrollIntoView({ block: "nearest" });
  }

  function setActive(index, follow) {
    active = index;
    questions.forEach(function (question, i) { question.classList.toggle("active", i === index); });
    if (follow) bringIntoView(questions[index]);
  }

  function refresh() {
    submitButton.disabled = sent || !allAnswered();
  }

  function moveOn(fromIndex) {
    var next = firstUnansweredAfter(fromIndex);
    refresh();
    if (next === -1) {
      setActive(fromIndex, false);
      bringIntoView(submitButton);
    } else {
      setActive(next, true);
    }
  }

  function choose(value) {
    var input = questions[active].querySelector('input[value="' + value + '"]');
    if (!input) return;
    input.checked = true;
    moveOn(active);
  }

  // ---- sending the answer and showing the next pair ----

  function send() {
    if (sent || !allAnswered()) return;
    responseField.value = shownAt === null ? "" : String(Math.round(performance.now() - shownAt));
    sent = true;
    refresh();
    if (!window.fetch || !window.URLSearchParams) { form.submit(); return; }
    fetch(root.getAttribute("data-answer-url"), {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) throw new Error("answer refused with status " + response.status);
        return response.json();
      })
      .then(function (next) {
        if (next.state === "pair") showPair(next);
        else window.location.assign(next.url);
      })
      .catch(function () { form.submit(); });
  }

  function showPair(next) {
    root.classList.add("swapping");
    form.reset();
    assignmentField.value = next.assignment;
    responseField.value = "";
    images.forEach(function (image, i) { image.src = next.images[i]; });
    showReferences(next.references);
    document.getElementById("prompt-text").textContent = next.prompt;
    document.querySelector("#progress strong").textContent = String(next.number);
    document.getElementById("progress").lastChild.textContent = " of " + next.total;
    document.getElementById("progress-bar").value = next.number - 1;
    document.title = "Pair " + next.number + " of " + next.total;
    root.setAttribute("data-preload", next.preload.join(" "));
    sent = false;
    window.scrollTo(0, 0);
    setActive(0, false);
    questions[0].focus({ preventScroll: true });
    refresh();
    whenImagesShown();
  }

  function showReferences(urls) {
    var current = referenceLinks().map(function (link) { return link.getAttribute("href"); });
    if (current.join(" ") === urls.join(" ")) return;
    references.textContent = "";
    urls.forEach(function (url, i) {
      var link = document.createElement("a");
      link.className = "reference";
      link.href = url;
      link.target = "_blank";
      var image = document.createElement("img");
      image.src = url;
      image.alt = "Photo " + (i + 1) + " of the subject";
      link.appendChild(image);
      references.appendChild(link);
    });
  }

  function preloadNext() {
    (root.getAttribute("data-preload") || "").split(" ").forEach(function (url) {
      if (url) { var image = new Image(); image.src = url; }
    });
  }

  function shown(image) {
    if (image.decode) return image.decode().catch(function () {});
    return new Promise(function (resolve) {
      if (image.complete) resolve();
      else { image.addEventListener("load", resolve); image.addEventListener("error", resolve); }
    });
  }

  function whenImagesShown() {
    var pair = ++pairsShown;
    shownAt = null;
    Promise.all(images.map(shown)).then(function () {
      if (pair !== pairsShown) return;
      root.classList.remove("swapping");
      shownAt = performance.now();
      preloadNext();
    });
  }

  // ---- the subject's photos, enlarged ----

  function referenceLinks() { return Array.prototype.slice.call(references.querySelectorAll("a")); }

  function showPhoto(index) {
    var links = referenceLinks();
    if (links.length === 0) return;
    shownPhoto = (index + links.length) % links.length;
    viewerImage.src = links[shownPhoto].getAttribute("href");
    viewerImage.alt = "Photo " + (shownPhoto + 1) + " of the subject, enlarged";
    if (!viewer.open) viewer.showModal();
  }

  references.addEventListener("click", function (event) {
    var link = event.target.closest("a");
    if (!link) return;
    event.preventDefault();
    showPhoto(referenceLinks().indexOf(link));
  });

  viewer.addEventListener("click", function () { viewer.close(); });

  function viewerKey(event) {
    if (event.key === "ArrowRight" || event.key === "p" || event.key === "P") {
      event.preventDefault();
      showPhoto(shownPhoto + 1);
    } else if (event.key === "ArrowLeft") {
      event.preventDefault();
      showPhoto(shownPhoto - 1);
    } else if (event.key !== "Escape" && event.key !== "Tab") {
      event.preventDefault(); // answers are given with the pair in sight, not behind the photo
    }
  }

  // ---- keys ----

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (viewer.open) { viewerKey(event); return; }
    var key = event.key;
    if (key === "1" || key === "2" || key === "0") {
      event.preventDefault();
      choose(key);
    } else if (key === "p" || key === "P") {
      event.preventDefault();
      showPhoto(0);
    } else if (key === "Enter") {
      if (event.target.closest && event.target.closest("a, button")) return; // their own action
      event.preventDefault();
      if (allAnswered()) send();
      else setActive(firstUnansweredAfter(questions.length - 1), true);
    } else if (key === "ArrowUp" && active > 0) {
      event.preventDefault();
      setActive(active - 1, true);
    } else if (key === "ArrowDown" && active < questions.length - 1) {
      event.preventDefault();
      setActive(active + 1, true);
    }
  });

  form.addEventListener("change", function (event) {
    var question = event.target.closest(".question");
    if (question) moveOn(questions.indexOf(question));
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    send();
  });

  setActive(0, false);
  refresh();
  whenImagesShown();
})();
