// The rating page: keys 1 / 2 / 0 answer the active question and move on; Enter submits when all
// three are answered. Times from both images loaded to submit; preloads the next pair's images.
(function () {
  "use strict";
  var root = document.getElementById("rate");
  var form = document.getElementById("answer-form");
  if (!root || !form) return;
  var questions = Array.prototype.slice.call(form.querySelectorAll(".question"));
  var submitButton = document.getElementById("submit-answer");
  var responseField = form.elements.namedItem("response_ms");
  var active = 0;
  var shownAt = null;
  var sent = false;

  function isAnswered(question) { return question.querySelector("input:checked") !== null; }
  function allAnswered() { return questions.every(isAnswered); }

  function firstUnansweredAfter(index) {
    for (var step = 1; step <= questions.length; step++) {
      var candidate = (index + step) % questions.length;
      if (!isAnswered(questions[candidate])) return candidate;
    }
    return -1;
  }

  function setActive(index) {
    active = index;
    questions.forEach(function (question, i) { question.classList.toggle("active", i === index); });
  }

  function refresh() {
    submitButton.disabled = sent || !allAnswered();
  }

  function moveOn(fromIndex) {
    var next = firstUnansweredAfter(fromIndex);
    setActive(next === -1 ? fromIndex : next);
    refresh();
  }

  function choose(value) {
    var input = questions[active].querySelector('input[value="' + value + '"]');
    if (!input) return;
    input.checked = true;
    moveOn(active);
  }

  function send() {
    if (sent || !allAnswered()) return;
    responseField.value = shownAt === null ? "" : String(Math.round(performance.now() - shownAt));
    sent = true;
    refresh();
    form.submit();
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "1" || event.key === "2" || event.key === "0") {
      event.preventDefault();
      choose(event.key);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (allAnswered()) send();
      else setActive(firstUnansweredAfter(questions.length - 1));
    } else if (event.key === "ArrowUp" && active > 0) {
      event.preventDefault();
      setActive(active - 1);
    } else if (event.key === "ArrowDown" && active < questions.length - 1) {
      event.preventDefault();
      setActive(active + 1);
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

  function preloadNext() {
    (root.getAttribute("data-preload") || "").split(" ").forEach(function (url) {
      if (url) { var image = new Image(); image.src = url; }
    });
  }

  var pending = 2;
  function imageReady() {
    pending -= 1;
    if (pending === 0) {
      shownAt = performance.now();
      preloadNext();
    }
  }
  [document.getElementById("image-1"), document.getElementById("image-2")].forEach(function (image) {
    if (image.complete && image.naturalWidth > 0) imageReady();
    else image.addEventListener("load", imageReady, { once: true });
  });

  setActive(0);
  refresh();
})();
